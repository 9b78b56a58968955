#!/usr/bin/env bash
# Copies the CRDs from manifests/crd/ (the source of truth) into the Helm chart's crds/.
#
#   tools/sync-crds.sh           copy
#   tools/sync-crds.sh --check   exit 1 and name the files that differ (tests/unit/test_chart.py)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=$ROOT/manifests/crd
DST=$ROOT/charts/pgshift/crds

shopt -s nullglob
crds=("$SRC"/*.yaml)
# kustomization.yaml in manifests/crd is kustomize's index, not a CRD.
crds=("${crds[@]/$SRC\/kustomization.yaml}")
if [ "${#crds[@]}" -eq 0 ] || [ -z "$(printf '%s' "${crds[@]}")" ]; then
  echo "sync-crds: no CRD in $SRC" >&2
  exit 1
fi

if [ "${1:-}" = "--check" ]; then
  rc=0
  for f in "${crds[@]}"; do
    [ -n "$f" ] || continue
    if ! cmp -s "$f" "$DST/$(basename "$f")"; then
      echo "sync-crds: $DST/$(basename "$f") differs from $f: run tools/sync-crds.sh" >&2
      rc=1
    fi
  done
  for f in "$DST"/*.yaml; do
    [ -f "$SRC/$(basename "$f")" ] || { echo "sync-crds: $f has no source in $SRC" >&2; rc=1; }
  done
  exit $rc
fi

mkdir -p "$DST"
for f in "$DST"/*.yaml; do
  [ -f "$SRC/$(basename "$f")" ] || rm -f "$f"
done
for f in "${crds[@]}"; do
  [ -n "$f" ] || continue
  cp "$f" "$DST/$(basename "$f")"
  echo "sync-crds: $(basename "$f") -> charts/pgshift/crds/"
done
