// Command gitops-check shows how Argo CD and Flux see Migration resources.
//
//	gitops-check -lua charts/pgshift/files/argocd-health.lua tests/gitops/fixtures/*.yaml
//
// For each fixture (one Kubernetes object per file) it prints one JSON line:
//
//	{"file": "...", "argocd": {"status": "Healthy", "message": "..."},
//	 "kstatus": {"status": "Current", "message": "..."}}
//
// argocd is the result of the Lua health check run by gopher-lua the way Argo CD runs a
// custom health check from argocd-cm (only the base, table and package libraries open, the
// object as the global `obj`, a one-second budget, an unknown status mapped to Unknown).
// kstatus is sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute, the library Flux's
// kustomize-controller and helm-controller use for health checks (Flux builds a fork of it,
// github.com/fluxcd/cli-utils, with the same rules for custom resources).
//
// With -flux-exprs FILE (YAML with the keys current, failed, inProgress) it also prints
// "fluxCEL": the status Flux's kustomize-controller computes from spec.healthCheckExprs, with
// the CEL environment and the order of fluxcd/pkg/runtime/cel (RFC 0009): a differing
// status.observedGeneration is InProgress; then inProgress, failed, current, the first true
// wins; none true is InProgress; an evaluation error is reported as Unknown (the poller
// keeps waiting).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type report struct {
	File    string   `json:"file"`
	ArgoCD  verdict  `json:"argocd"`
	KStatus verdict  `json:"kstatus"`
	FluxCEL *verdict `json:"fluxCEL,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// fluxExprs is one entry of a Flux Kustomization's spec.healthCheckExprs.
type fluxExprs struct {
	Current    string `json:"current"`
	Failed     string `json:"failed"`
	InProgress string `json:"inProgress"`
}

// The statuses Argo CD accepts from a health script (gitops-engine's HealthStatusCode).
var argoStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

func main() {
	script := flag.String("lua", "", "the Argo CD health check (Lua)")
	exprsFile := flag.String("flux-exprs", "", "Flux healthCheckExprs to evaluate (YAML)")
	celRule := flag.String("cel-rule", "", "a CRD x-kubernetes-validations rule on a string field: evaluate it with self = each argument")
	flag.Parse()
	if *celRule != "" {
		os.Exit(checkRule(*celRule, flag.Args()))
	}
	if *script == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: gitops-check -lua HEALTH.lua FIXTURE.yaml...")
		os.Exit(2)
	}
	source, err := os.ReadFile(*script)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var exprs *fluxExprs
	if *exprsFile != "" {
		raw, err := os.ReadFile(*exprsFile)
		if err == nil {
			exprs = &fluxExprs{}
			err = yaml.Unmarshal(raw, exprs)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	out := json.NewEncoder(os.Stdout)
	failed := false
	for _, path := range flag.Args() {
		rep := check(path, string(source), exprs)
		if rep.Error != "" {
			failed = true
		}
		if err := out.Encode(rep); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	if failed {
		os.Exit(1)
	}
}

func check(path, script string, exprs *fluxExprs) report {
	rep := report{File: path}
	raw, err := os.ReadFile(path)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	// As the apiserver hands objects to clients: JSON, integers as int64.
	doc, err := yaml.YAMLToJSON(raw)
	if err != nil {
		rep.Error = fmt.Sprintf("parsing %s: %v", path, err)
		return rep
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(doc); err != nil {
		rep.Error = fmt.Sprintf("decoding %s: %v", path, err)
		return rep
	}

	health, err := argoHealth(u, script)
	if err != nil {
		rep.Error = fmt.Sprintf("argocd health: %v", err)
		return rep
	}
	rep.ArgoCD = health

	res, err := status.Compute(u)
	if err != nil {
		rep.Error = fmt.Sprintf("kstatus: %v", err)
		return rep
	}
	rep.KStatus = verdict{Status: res.Status.String(), Message: res.Message}

	if exprs != nil {
		flux, err := fluxStatus(u, exprs)
		if err != nil {
			rep.Error = fmt.Sprintf("flux CEL: %v", err)
			return rep
		}
		rep.FluxCEL = &flux
	}
	return rep
}

// fluxStatus evaluates healthCheckExprs as fluxcd/pkg/runtime/cel's StatusEvaluator does.
func fluxStatus(u *unstructured.Unstructured, exprs *fluxExprs) (verdict, error) {
	obj := u.UnstructuredContent()
	observed, found, err := unstructured.NestedInt64(obj, "status", "observedGeneration")
	if err != nil {
		return verdict{}, err
	}
	if found {
		generation, ok, err := unstructured.NestedInt64(obj, "metadata", "generation")
		if err != nil {
			return verdict{}, err
		}
		if ok && observed != generation {
			return verdict{Status: "InProgress", Message: "status.observedGeneration differs"}, nil
		}
	}
	if exprs.Current == "" {
		return verdict{}, fmt.Errorf("expression current not specified")
	}
	env, err := cel.NewEnv(
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Sets(),
		ext.Encoders(),
	)
	if err != nil {
		return verdict{}, err
	}
	for _, e := range []struct{ expr, status string }{
		{exprs.InProgress, "InProgress"},
		{exprs.Failed, "Failed"},
		{exprs.Current, "Current"},
	} {
		if e.expr == "" {
			continue
		}
		ast, issues := env.Parse(e.expr) // parsed, not compiled: as Flux does
		if issues != nil && issues.Err() != nil {
			return verdict{}, fmt.Errorf("parsing %q: %w", e.expr, issues.Err())
		}
		prog, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100))
		if err != nil {
			return verdict{}, err
		}
		val, _, err := prog.Eval(obj)
		if err != nil {
			return verdict{Status: "Unknown", Message: err.Error()}, nil
		}
		result, ok := val.(types.Bool)
		if !ok {
			return verdict{Status: "Unknown", Message: fmt.Sprintf("%q is not a boolean", e.expr)}, nil
		}
		if bool(result) {
			return verdict{Status: e.status, Message: e.expr}, nil
		}
	}
	return verdict{Status: "InProgress", Message: "no expression is true"}, nil
}

// argoHealth runs a health script as Argo CD runs one configured in argocd-cm.
func argoHealth(u *unstructured.Unstructured, script string) (verdict, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true},
			lua.LString(lib.name)); err != nil {
			return verdict{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, u.Object))
	if err := l.DoString(script); err != nil {
		return verdict{}, err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return verdict{}, fmt.Errorf("expect table output from Lua script, not %s", l.Get(-1).Type())
	}
	v := verdict{
		Status:  lua.LVAsString(ret.RawGetString("status")),
		Message: lua.LVAsString(ret.RawGetString("message")),
	}
	if !argoStatuses[v.Status] {
		return verdict{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return v, nil
}

// toLua converts a decoded JSON value the way Argo CD hands objects to Lua: objects become
// tables keyed by string, arrays become 1-based sequences, numbers become Lua numbers.
func toLua(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case []interface{}:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]interface{}:
		t := l.CreateTable(0, len(v))
		for key, item := range v {
			t.RawSetString(key, toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

// checkRule compiles a CRD validation rule whose `self` is a string (as the apiserver
// compiles it: type-checked) and prints, per value, whether the rule holds. A rule that does
// not compile exits 2; a runtime error (the apiserver refuses the object) is printed as such.
func checkRule(rule string, values []string) int {
	env, err := cel.NewEnv(
		cel.HomogeneousAggregateLiterals(),
		cel.DefaultUTCTimeZone(true),
		ext.Strings(),
		cel.Variable("self", cel.StringType),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ast, issues := env.Compile(rule)
	if issues != nil && issues.Err() != nil {
		fmt.Fprintln(os.Stderr, issues.Err())
		return 2
	}
	if ast.OutputType() != cel.BoolType {
		fmt.Fprintf(os.Stderr, "rule is of type %v, not bool\n", ast.OutputType())
		return 2
	}
	prog, err := env.Program(ast)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	out := json.NewEncoder(os.Stdout)
	for _, v := range values {
		res := map[string]any{"value": v}
		got, _, err := prog.Eval(map[string]any{"self": v})
		if err != nil {
			res["ok"], res["error"] = false, err.Error()
		} else {
			res["ok"] = got.Value() == true
		}
		_ = out.Encode(res)
	}
	return 0
}
