#!/usr/bin/env python3
"""Write kubeconform's strict JSON schemas from Kubernetes' OpenAPI document and from CRDs.

kubeconform downloads its schemas from the internet by default; here they are made offline from
`api/openapi-spec/swagger.json` of the `k8s.io/kubernetes` Go module (the same release the local
cluster builds) and from our CRDs, one standalone file per kind, named as kubeconform looks them
up: `<kind>-<group's first label>-<version>.json` (`<kind>-<version>.json` for the core group).

    kube-json-schemas.py OUT_DIR --swagger swagger.json [--crd FILE ...]

Strict, like kubeconform's `-strict` schema sets: every object with declared properties gets
`additionalProperties: false` unless it preserves unknown fields. Recursive types (a CRD's
JSONSchemaProps) are expanded one level, then left open.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

_INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
_QUANTITY = {"oneOf": [{"type": "string"}, {"type": "number"}]}


def _strict(node: dict[str, Any]) -> dict[str, Any]:
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        node["additionalProperties"] = False
    return node


class Expander:
    def __init__(self, definitions: dict[str, Any]) -> None:
        self.defs = definitions
        self.done: dict[str, Any] = {}

    def ref(self, name: str, stack: frozenset[str]) -> Any:
        if name.endswith("api.resource.Quantity"):
            return dict(_QUANTITY)
        if name.endswith("util.intstr.IntOrString"):
            return dict(_INT_OR_STRING)
        if name in stack:
            return {}
        if name not in self.done:
            self.done[name] = self.node(self.defs[name], stack | {name})
        return self.done[name]

    def node(self, node: Any, stack: frozenset[str]) -> Any:
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return self.ref(node["$ref"].rsplit("/", 1)[-1], stack)
        if node.get("format") == "int-or-string":
            return dict(_INT_OR_STRING)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "properties":
                out[key] = {k: self.node(v, stack) for k, v in value.items()}
            elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
                out[key] = self.node(value, stack)
            elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
                out[key] = [self.node(v, stack) for v in value]
            elif key.startswith("x-kubernetes-group-version-kind"):
                continue
            else:
                out[key] = value
        if "properties" in out and "type" not in out:
            out["type"] = "object"
        return _strict(out)


def _file_name(group: str, version: str, kind: str) -> str:
    suffix = f"-{group.split('.')[0].lower()}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


def from_swagger(path: Path, out: Path) -> int:
    definitions = json.loads(path.read_text())["definitions"]
    expander = Expander(definitions)
    written = 0
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            schema = copy.deepcopy(expander.ref(name, frozenset()))
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            target = out / _file_name(gvk["group"], gvk["version"], gvk["kind"])
            target.write_text(json.dumps(schema, separators=(",", ":")))
            written += 1
    return written


def _crd_node(node: Any) -> Any:
    if isinstance(node, list):
        return [_crd_node(v) for v in node]
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-int-or-string"):
        return dict(_INT_OR_STRING)
    out = {k: _crd_node(v) for k, v in node.items() if k != "default"}
    if "properties" in node:
        out["properties"] = {k: _crd_node(v) for k, v in node["properties"].items()}
    return _strict(out)


def from_crd(path: Path, out: Path) -> int:
    written = 0
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        for version in spec["versions"]:
            schema = _crd_node(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
            props = schema.setdefault("properties", {})
            props["apiVersion"] = {"type": "string"}
            props["kind"] = {"type": "string"}
            props["metadata"] = {"type": "object"}  # the apiserver validates metadata itself
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            target = out / _file_name(spec["group"], version["name"], spec["names"]["kind"])
            target.write_text(json.dumps(schema, separators=(",", ":")))
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--swagger", type=Path)
    parser.add_argument("--crd", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    count = from_swagger(args.swagger, args.out) if args.swagger else 0
    for crd in args.crd:
        count += from_crd(crd, args.out)
    print(f"kube-json-schemas: {count} schemas in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
