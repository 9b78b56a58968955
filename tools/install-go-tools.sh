#!/usr/bin/env bash
# Installs the Go tools that check the Helm chart and the GitOps health rules, pinned, into a
# cache outside the work tree (a fresh machine builds them once; later runs reuse them).
#
#   tools/install-go-tools.sh            # installs helm, kubeconform, gitops-check; prints the bin dir
#
# Idempotent: a tool is rebuilt only when its pinned version (or, for gitops-check, its source)
# changed. Go comes from /usr/local/go (the same toolchain localcluster uses) or PATH.
set -euo pipefail

HELM_VERSION=v3.19.5
KUBECONFORM_VERSION=v0.7.0
# The Kubernetes minor helm assumes by default (its release's client-go minor).
HELM_KUBE_MINOR=34

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${PGSHIFT_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgshift-tools}
BIN=$CACHE/bin
mkdir -p "$BIN"
# one build at a time: tests of several checkouts call this script at once.
exec 9>"$CACHE/.lock"
flock 9

GO=$(command -v go || true)
[ -n "$GO" ] || GO=/usr/local/go/bin/go
[ -x "$GO" ] || { echo "install-go-tools: Go is not installed (need Go >= 1.24)" >&2; exit 1; }
export GOFLAGS=${GOFLAGS:--buildvcs=false}

install_module() {  # name module@version [ldflags]
  local name=$1 module=$2 ldflags=${3:-} stamp="$BIN/.$1.version"
  if [ -x "$BIN/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$module $ldflags" ]; then
    return 0
  fi
  echo "install-go-tools: building $module (once; cached in $BIN)" >&2
  GOBIN="$BIN" "$GO" install -ldflags "$ldflags" "$module"
  echo "$module $ldflags" >"$stamp"
}

# helm's own Makefile stamps its version and the Kubernetes version it assumes by default
# (without them `helm template` assumes Kubernetes v1.20 and `helm version` says nothing).
HELM_PKG=helm.sh/helm/v3
install_module helm "$HELM_PKG/cmd/helm@$HELM_VERSION" "-s -w \
 -X $HELM_PKG/internal/version.version=$HELM_VERSION \
 -X $HELM_PKG/pkg/lint/rules.k8sVersionMajor=1 -X $HELM_PKG/pkg/lint/rules.k8sVersionMinor=$HELM_KUBE_MINOR \
 -X $HELM_PKG/pkg/chartutil.k8sVersionMajor=1 -X $HELM_PKG/pkg/chartutil.k8sVersionMinor=$HELM_KUBE_MINOR"
install_module kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"

# gitops-check: our own helper (gopher-lua + kstatus), rebuilt when its source changes.
SRC="$ROOT/tools/gitops-check"
if [ -f "$SRC/go.mod" ]; then
  sum=$(cat "$SRC"/go.mod "$SRC"/go.sum "$SRC"/*.go | sha256sum | cut -c1-16)
  if ! [ -x "$BIN/gitops-check" ] || [ "$(cat "$BIN/.gitops-check.version" 2>/dev/null)" != "$sum" ]; then
    echo "install-go-tools: building tools/gitops-check (cached in $BIN)" >&2
    (cd "$SRC" && "$GO" build -o "$BIN/gitops-check" .)
    echo "$sum" >"$BIN/.gitops-check.version"
  fi
fi

# kubeconform's schemas, made offline from the OpenAPI document of the k8s.io/kubernetes Go
# module at the release the local cluster builds (localcluster/config.py), reusing the local
# cluster's module cache when it has it. kubeconform would otherwise download them.
K8S_VERSION=$(sed -n 's/^KUBERNETES_VERSION = "\(v[0-9.]*\)"/\1/p' "$ROOT/localcluster/config.py")
K8S_VERSION=${K8S_VERSION:-v1.33.13}
SCHEMAS=$CACHE/schemas/$K8S_VERSION
if ! [ -f "$SCHEMAS/.done" ]; then
  LC_MOD=${LOCALCLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgshift-localcluster}/go/mod
  SWAGGER=$LC_MOD/k8s.io/kubernetes@$K8S_VERSION/api/openapi-spec/swagger.json
  if ! [ -f "$SWAGGER" ]; then
    echo "install-go-tools: downloading k8s.io/kubernetes@$K8S_VERSION for its OpenAPI document" >&2
    dir=$(cd /tmp && GOFLAGS=-mod=mod "$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
          | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    SWAGGER=$dir/api/openapi-spec/swagger.json
  fi
  PY=$ROOT/.venv/bin/python
  [ -x "$PY" ] || PY=python3
  rm -rf "$SCHEMAS" && "$PY" "$ROOT/tools/kube-json-schemas.py" "$SCHEMAS" --swagger "$SWAGGER"
  touch "$SCHEMAS/.done"
fi

echo "$BIN"
