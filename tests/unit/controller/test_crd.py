"""The CRD (the user's truth) and the controller's enums and defaults must agree."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgshift.controller import api
from pgshift.controller.memory import Memory, user_status
from tests.unit import test_gitops

#: tools/gitops-check (cel-go), built once: it compiles and runs the CRD's CEL rules.
gitops_check = test_gitops.gitops_check

CRD = Path(__file__).resolve().parents[3] / "manifests" / "crd" / "pgshift.dev_migrations.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return yaml.safe_load(CRD.read_text())


@pytest.fixture(scope="module")
def spec_schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


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


@pytest.mark.parametrize(
    ("path", "enum"),
    [
        ("source.layout", api.Layout),
        ("backup.when", api.BackupWhen),
        ("backup.scope", api.BackupScope),
        ("safety.destructive", api.Destructive),
        ("contract.after", api.ContractAfter),
    ],
)
def test_enums_match(spec_schema: dict[str, Any], path: str, enum: type) -> None:
    assert prop(spec_schema, path)["enum"] == [e.value for e in enum]


def test_layout_enum_matches_the_reader() -> None:
    from pgshift.migrations import Layout

    assert [e.value for e in api.Layout] == [e.value for e in Layout]


@pytest.mark.parametrize(
    ("path", "default"),
    [
        ("database.urlSecretRef.key", api.SecretKeyRef("x").key),
        ("source.layout", api.SourceSpec().layout.value),
        ("source.image.path", api.SourceSpec().image_path),
        ("tracking.schema", api.TrackingSpec().schema),
        ("tracking.table", api.TrackingSpec().table),
        ("target", ""),
        ("baseline.upTo", ""),
        ("backup.when", api.BackupSpec().when.value),
        ("backup.scope", api.BackupSpec().scope.value),
        ("backup.keep", api.BackupSpec().keep),
        ("safety.lockTimeout", api.SafetySpec().lock_timeout),
        ("safety.lockWait", api.SafetySpec().lock_wait),
        ("safety.destructive", api.SafetySpec().destructive.value),
        ("safety.rewrite", api.SafetySpec().rewrite),
        ("contract.after", api.ContractSpec().after.value),
        ("backfill.targetBatchTime", api.BackfillSpec().target_batch_time),
        ("backfill.pause", api.BackfillSpec().pause),
        ("job.activeDeadlineSeconds", api.JobSpec().active_deadline_seconds),
        ("job.ttlSecondsAfterFinished", api.JobSpec().ttl_seconds_after_finished),
        ("suspend", False),
    ],
)
def test_defaults_match(spec_schema: dict[str, Any], path: str, default: object) -> None:
    assert prop(spec_schema, path)["default"] == default


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
