#!/usr/bin/env bash
# `make chart-check`: the Helm chart and the kustomize manifests, checked offline.
#   - the chart's crds/ equals manifests/crd/ (tools/sync-crds.sh --check)
#   - helm lint --strict, for all-namespaces and listed-namespaces values
#   - helm template | kubeconform -strict, against Kubernetes' own schemas and the Migration CRD
#   - kubectl kustomize manifests/ and manifests/examples/* | kubeconform -strict
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

BIN=$(tools/install-go-tools.sh)
CACHE=$(dirname "$BIN")
K8S_VERSION=$(sed -n 's/^KUBERNETES_VERSION = "\(v[0-9.]*\)"/\1/p' localcluster/config.py)
K8S_SCHEMAS=$CACHE/schemas/${K8S_VERSION:-v1.33.13}
PY=$ROOT/.venv/bin/python
[ -x "$PY" ] || PY=python3

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

tools/sync-crds.sh --check
"$PY" tools/kube-json-schemas.py "$tmp/crd-schemas" --crd manifests/crd/pgshift.dev_migrations.yaml

conform() {  # label, manifests on stdin
  echo "chart-check: kubeconform $1" >&2
  # ServiceMonitor is the Prometheus Operator's CRD, not in the schema set: tests/unit/test_chart.py
  # checks its shape instead.
  "$BIN/kubeconform" -strict -summary -skip ServiceMonitor \
    -schema-location "$K8S_SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -schema-location "$tmp/crd-schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" -
}

declare -a VALUE_SETS=(
  ""
  "--set watchNamespaces={shop,billing} --set runner.allowedImages={registry.example.com/pgshift:0.1.0}"
  "--set runner.serviceAccount.namespaces={shop} --set image.digest=sha256:$(printf '0%.0s' {1..64})"
  "--set metrics.serviceMonitor.enabled=true --set metrics.dashboard.enabled=true --set metrics.port=9100"
  "--set metrics.enabled=false"
)
for values in "${VALUE_SETS[@]}"; do
  # shellcheck disable=SC2086
  "$BIN/helm" lint --strict charts/pgshift $values
  # shellcheck disable=SC2086
  "$BIN/helm" template pgshift charts/pgshift --namespace pgshift-system --include-crds $values \
    | conform "helm template ${values:-(defaults)}"
done

kubectl kustomize manifests | conform "manifests/"
for example in manifests/examples/*/; do
  [ -f "$example/kustomization.yaml" ] || continue
  kubectl kustomize "$example" | conform "$example"
done
echo "chart-check: ok" >&2
