"""The CRD (the user's truth) and the controller's enums and defaults must agree."""

from __future__ import annotations

import copy
import dataclasses
import enum
import json
import subprocess
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgshift import settings
from pgshift.controller import api
from pgshift.controller.memory import Memory, user_status
from pgshift.safety.model import Phase
from tests.unit import test_gitops

#: tools/gitops-check (cel-go), built once: it compiles and runs the CRD's CEL rules.
gitops_check = test_gitops.gitops_check

CRD = Path(__file__).resolve().parents[3] / "manifests" / "crd" / "pgshift.dev_migrations.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return typing.cast(dict[str, Any], yaml.safe_load(CRD.read_text()))


@pytest.fixture(scope="module")
def spec_schema(crd: dict[str, Any]) -> dict[str, Any]:
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return typing.cast(dict[str, Any], spec)


def prop(schema: dict[str, Any], path: str) -> dict[str, Any]:
    for part in path.split("."):
        schema = schema["properties"][part]
    return schema


def test_identity(crd: dict[str, Any]) -> None:
    assert crd["spec"]["group"] == api.GROUP
    assert crd["spec"]["names"]["kind"] == api.KIND
    assert crd["spec"]["names"]["plural"] == api.PLURAL
    assert "mig" in crd["spec"]["names"]["shortNames"]
    version = crd["spec"]["versions"][0]
    assert version["name"] == api.VERSION
    assert version["subresources"] == {"status": {}}


def crd_leaves(schema: dict[str, Any], path: str = "") -> dict[str, dict[str, Any]]:
    """CRD path -> schema node of every property that holds a value: a scalar, a list, or an
    object with no properties of its own (a map, or preserve-unknown-fields)."""
    out: dict[str, dict[str, Any]] = {}
    for name, sub in (schema.get("properties") or {}).items():
        here = f"{path}.{name}" if path else name
        if sub.get("type") == "object" and sub.get("properties") and not sub.get(
            "additionalProperties"
        ):
            out |= crd_leaves(sub, here)
        else:
            out[here] = sub
    return out


def spec_leaves(cls: type[Any], path: str = "") -> dict[str, tuple[Any, Any]]:
    """CRD path -> (type, default) of every field of the spec types, read as `parse_spec`
    reads them (api.field_paths); a field read from two properties (its own reader: an older
    spelling) appears under both, typed by the first."""
    out: dict[str, tuple[Any, Any]] = {}
    hints = api.field_types(cls)
    for f in dataclasses.fields(cls):
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else f.default_factory()
            if f.default_factory is not dataclasses.MISSING
            else dataclasses.MISSING
        )
        for i, sub in enumerate(api.field_paths(f)):
            here = f"{path}.{sub}" if path else sub
            if dataclasses.is_dataclass(hints[f.name]):
                out |= spec_leaves(hints[f.name], here)
            else:
                out[here] = (hints[f.name] if i == 0 else None, default)
    return out


def _plain(kind: Any) -> Any:
    """`str | None` -> str: what the CRD's type says about a field that may be unset."""
    args = [k for k in typing.get_args(kind) if k is not type(None)]
    return args[0] if typing.get_origin(kind) in (types.UnionType, typing.Union) else kind


CRD_TYPES = {"string": (str,), "integer": (int,), "boolean": (bool,), "array": (tuple,)}


def disagreements(spec_schema: dict[str, Any]) -> list[str]:
    """Where the CRD's `spec` and the spec types differ: a property without a field or a field
    without a property, a type, an enum's values, a default."""
    crd, spec = crd_leaves(spec_schema), spec_leaves(api.MigrationSpec)
    wrong = [f"{p}: in the CRD, no spec field" for p in sorted(crd.keys() - spec.keys())]
    wrong += [f"{p}: a spec field, not in the CRD" for p in sorted(spec.keys() - crd.keys())]
    for path in sorted(crd.keys() & spec.keys()):
        node, (kind, default) = crd[path], spec[path]
        plain = _plain(kind)
        is_enum = isinstance(plain, type) and issubclass(plain, enum.Enum)
        if node["type"] == "object":
            ok_type = typing.get_origin(plain) is Mapping
        else:
            ok_type = (typing.get_origin(plain) or plain) in CRD_TYPES[node["type"]] or (
                is_enum and node["type"] == "string"
            )
        if kind is not None and not ok_type:
            wrong.append(f"{path}: CRD type {node['type']}, spec type {kind}")
        if ("enum" in node or is_enum) and node.get("enum") != [
            e.value for e in (plain if is_enum else ())
        ]:
            wrong.append(f"{path}: CRD enum {node.get('enum')}, spec type {kind}")
        plain_default = default.value if isinstance(default, enum.Enum) else default
        if "default" in node and node["default"] != plain_default:
            wrong.append(f"{path}: CRD default {node['default']!r}, spec {plain_default!r}")
        if "default" not in node and plain_default not in (None, (), {}, dataclasses.MISSING):
            wrong.append(f"{path}: spec default {plain_default!r}, CRD none")
    return wrong


def test_the_crd_and_the_spec_types_agree(spec_schema: dict[str, Any]) -> None:
    """Every CRD spec property is one spec field and back, with the same type, enum values
    and default: adding a property without its field (or the other way round) fails here."""
    assert disagreements(spec_schema) == []


def test_a_drift_between_the_crd_and_the_spec_types_is_named(
    spec_schema: dict[str, Any],
) -> None:
    changed = copy.deepcopy(spec_schema)
    props = changed["properties"]
    props["safety"]["properties"]["lockWait"]["default"] = "6m"
    props["backup"]["properties"]["when"]["enum"].append("Weekly")
    props["safety"]["properties"]["notAField"] = {"type": "string", "default": "0s"}
    del props["suspend"]
    assert disagreements(changed) == [
        "safety.notAField: in the CRD, no spec field",
        "suspend: a spec field, not in the CRD",
        "backup.when: CRD enum ['Always', 'BeforeDestructive', 'Never', 'Weekly'], "
        "spec type <enum 'BackupWhen'>",
        "safety.lockWait: CRD default '6m', spec '5m'",
    ]


def _attribute_paths(cls: type[Any], path: str = "", attrs: str = "") -> dict[str, str]:
    """CRD path -> the attribute chain `parse_spec`'s value holds it at (`safety.lock_wait`)."""
    out: dict[str, str] = {}
    hints = api.field_types(cls)
    for f in dataclasses.fields(cls):
        for sub in api.field_paths(f):
            here, at = f"{path}.{sub}" if path else sub, f"{attrs}.{f.name}" if attrs else f.name
            if dataclasses.is_dataclass(hints[f.name]):
                out |= _attribute_paths(hints[f.name], here, at)
            else:
                out[here] = at
    return out


@pytest.mark.parametrize("source", ["configMap", "image"])
def test_parse_reads_every_property_of_the_crd(spec_schema: dict[str, Any], source: str) -> None:
    """Each property set to a value other than its default arrives in its field."""
    body: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    other = {"configMap": "source.image.", "image": "source.configMap."}[source]
    for path, node in crd_leaves(spec_schema).items():
        if path == "contract.rollout.deployment" or path.startswith(other):
            continue  # one of two the CRD allows only one of (an older spelling, a source)
        if "enum" in node:
            value: Any = next(v for v in reversed(node["enum"]) if v != node.get("default"))
        elif node["type"] == "string":
            value = f"v-{path.rsplit('.', 1)[-1]}"
        elif node["type"] == "integer":
            value = 4242
        elif node["type"] == "boolean":
            value = not node.get("default", False)
        elif node["type"] == "array":
            value = ["a", "b"]
        else:
            value = {"k": {"phase": "expand"}}
        *parents, last = path.split(".")
        here = body
        for part in parents:
            here = here.setdefault(part, {})
        here[last] = value
        expected[path] = tuple(value) if isinstance(value, list) else value
    parsed = api.parse_spec(body)
    for path, attrs in _attribute_paths(api.MigrationSpec).items():
        if path not in expected:
            continue
        got: Any = parsed
        for attr in attrs.split("."):
            got = getattr(got, attr)
        got = got.value if isinstance(got, enum.Enum) else got
        assert got == expected[path], path


def test_shared_defaults_come_from_the_run_settings() -> None:
    """One source: what the CLI and a Migration both default is read from pgshift.settings."""
    assert api.TrackingSpec() == api.TrackingSpec(**dataclasses.asdict(settings.Tracking()))
    timeouts, backfill = settings.Timeouts(), settings.BackfillSettings()
    assert settings.parse_duration(api.SafetySpec().lock_wait, "x") == timeouts.lock_wait
    assert settings.parse_duration(api.SafetySpec().lock_timeout, "x") == timeouts.lock_timeout
    assert settings.parse_duration(api.BackfillSpec().pause, "x") == backfill.batch_pause
    assert (
        settings.parse_duration(api.BackfillSpec().target_batch_time, "x")
        == backfill.target_batch_time
    )
    assert api.SafetySpec().rewrite is settings.Selection().rewrite


def test_overrides_phase_enum_is_the_safety_phase(spec_schema: dict[str, Any]) -> None:
    phase = spec_schema["properties"]["overrides"]["additionalProperties"]["properties"]["phase"]
    assert phase["enum"] == [p.value for p in Phase]


def test_layout_and_destructive_are_defined_once() -> None:
    from pgshift.migrations import Layout

    assert api.Layout is Layout
    assert api.Destructive is settings.DestructivePolicy


def _walk(schema: dict[str, Any], path: str = "spec"):  # type: ignore[no-untyped-def]
    yield path, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}.*")


def test_every_field_is_described(crd: dict[str, Any]) -> None:
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing = [
        path
        for top in ("spec", "status")
        for path, s in _walk(root["properties"][top], top)
        if not s.get("description") and not path.endswith(".*")
    ]
    assert missing == []


def test_cel_rules_have_messages(crd: dict[str, Any]) -> None:
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = [
        r
        for _, s in _walk(root["properties"]["spec"])
        for r in s.get("x-kubernetes-validations", [])
    ]
    assert len(rules) >= 3
    assert all(r.get("message") for r in rules)


def test_printer_columns(crd: dict[str, Any]) -> None:
    columns = {c["name"]: c for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert list(columns) == ["Ready", "Phase", "Applied", "Pending", "Last backup", "Age"]
    assert columns["Pending"]["type"] == "integer"


def test_status_schema_holds_what_the_controller_writes(crd: dict[str, Any]) -> None:
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    written = {"observedGeneration", "phase", "conditions", "sourceDigest", "recovery"}
    written |= set(user_status(Memory()))
    assert written <= set(status["properties"]), written - set(status["properties"])


def test_parse_applies_the_same_defaults() -> None:
    spec = api.parse_spec(
        {
            "database": {"urlSecretRef": {"name": "db"}},
            "source": {"configMap": {"name": "cm"}},
            "backup": {"volume": {"claimName": "b"}},
        }
    )
    assert spec.database.key == "DATABASE_URL"
    assert spec.contract.after is api.ContractAfter.APPROVAL
    assert spec.backup.claim_name == "b"


@pytest.mark.parametrize(
    "bad",
    [
        {"source": {"configMap": {"name": "a"}, "image": {"reference": "x"}}},
        {"source": {}},
        {"contract": {"after": "Rollout"}},
        {"contract": {"after": "Rollout", "rollout": {"deployments": []}}},
        {"backup": {"when": "Always"}},
    ],
)
def test_parse_refuses_what_the_crd_refuses(bad: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "database": {"urlSecretRef": {"name": "db"}},
        "source": {"configMap": {"name": "cm"}},
        "backup": {"when": "Never"},
    }
    with pytest.raises(api.SpecError):
        api.parse_spec(base | bad)


SCHEMA_KEYS = {
    "type",
    "description",
    "properties",
    "items",
    "enum",
    "format",
    "default",
    "required",
    "pattern",
    "minimum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
}


def test_schema_nodes_use_only_schema_keywords(crd: dict[str, Any]) -> None:
    """A stray key is usually YAML gone wrong (a comma in a flow mapping)."""
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    def nodes(s: dict[str, Any]):  # type: ignore[no-untyped-def]
        yield s
        for sub in (s.get("properties") or {}).values():
            yield from nodes(sub)
        for key in ("items", "additionalProperties"):
            if isinstance(s.get(key), dict):
                yield from nodes(s[key])

    odd = [sorted(set(n) - SCHEMA_KEYS) for n in nodes(root) if set(n) - SCHEMA_KEYS]
    assert odd == []


def test_every_array_says_what_its_items_are(crd: dict[str, Any]) -> None:
    """The apiserver refuses a CRD whose array has no `items` (a structural schema): a merge
    that drops an `items:` line breaks every install, not only the field."""
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    def arrays(s: dict[str, Any], path: str):  # type: ignore[no-untyped-def]
        if s.get("type") == "array":
            yield path, s
        for name, sub in (s.get("properties") or {}).items():
            yield from arrays(sub, f"{path}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(s.get(key), dict):
                yield from arrays(s[key], f"{path}[]" if key == "items" else f"{path}.*")

    found = list(arrays(root, ""))
    assert len(found) > 5
    assert [path for path, s in found if not isinstance(s.get("items"), dict)] == []


#: field -> (values the apiserver must refuse, values it must accept): docs/operator.md.
DURATION_BOUNDS = {
    "safety.lockTimeout": (
        ["0s", "0", "99ms", "11m", "99999h"],
        ["100ms", "2s", "2", "1.5s", "10m"],
    ),
    "safety.lockWait": (["0s", "500ms", "25h", "99999h"], ["1s", "5m", "24h"]),
    "backfill.targetBatchTime": (["0s", "0.5ms", "2m"], ["1ms", "200ms", "1m"]),
    "backfill.pause": (["2h", "99999h"], ["0s", "0", "100ms", "1h"]),
}


@pytest.mark.parametrize("path", sorted(DURATION_BOUNDS))
def test_durations_are_bounded_by_a_cel_rule_with_a_message(
    spec_schema: dict[str, Any], path: str, gitops_check: Path
) -> None:
    """`lockTimeout: 0s` (no timeout at all) and `99999h` were accepted; the CRD's CEL rules,
    compiled and run with cel-go as the apiserver does, refuse them."""
    field = prop(spec_schema, path)
    (rule,) = field["x-kubernetes-validations"]
    assert f"spec.{path} must be between" in rule["message"]
    assert field["maxLength"] <= 64  # a bounded cost for the apiserver's CEL budget
    refused, accepted = DURATION_BOUNDS[path]
    out = subprocess.run(
        [str(gitops_check), "-cel-rule", rule["rule"], *refused, *accepted],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    verdicts = {r["value"]: r["ok"] for r in map(json.loads, out.stdout.splitlines())}
    assert verdicts == {**dict.fromkeys(refused, False), **dict.fromkeys(accepted, True)}
    assert api.SafetySpec().lock_timeout in DURATION_BOUNDS["safety.lockTimeout"][1]
