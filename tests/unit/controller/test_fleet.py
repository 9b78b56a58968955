"""The fleet's indexes (controller/fleet.py) and the conflict read from them: what kopf's
index handlers store, and that a reconcile finds the older Migration on the same tracking
table without listing the namespace. Pure: a dict stands in for kopf's read-only index
(a mapping of key -> values; kopf's own `Index` is filled by its watch in e2e)."""

from __future__ import annotations

from typing import Any

import pytest

from pgshift.controller import reconcile
from pgshift.controller.api import parse_spec
from pgshift.controller.fleet import (
    Fleet,
    job_entry,
    lagging,
    matters,
    migration_entry,
    pod_entry,
    tracking_key,
)

SPEC = {
    "database": {"urlSecretRef": {"name": "shop-db"}},
    "source": {"configMap": {"name": "cm"}},
    "backup": {"when": "Never"},
}


def body(name: str, created: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created},
        "spec": spec or SPEC,
    }


def index_of(*bodies: dict[str, Any]) -> dict[Any, list[Any]]:
    """What kopf's index holds after these Migrations were watched."""
    index: dict[Any, list[Any]] = {}
    for b in bodies:
        for key, value in migration_entry("shop", b["metadata"], b["spec"]).items():
            index.setdefault(key, []).append(value)
    return index


def test_a_migration_is_indexed_by_its_tracking_table() -> None:
    entry = migration_entry("shop", body("a", "2026-01-01T00:00:00Z")["metadata"], SPEC)
    assert entry == {
        ("shop", "shop-db", "DATABASE_URL", "drizzle", "__drizzle_migrations"): (
            "2026-01-01T00:00:00Z",
            "a",
        )
    }


def test_deleting_and_unreadable_migrations_are_not_indexed() -> None:
    meta = {**body("a", "t")["metadata"], "deletionTimestamp": "t"}
    assert migration_entry("shop", meta, SPEC) == {}
    assert migration_entry("shop", body("b", "t")["metadata"], {"source": {}}) == {}
    assert tracking_key("shop", {"source": {}}) is None


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch) -> Fleet:
    f = Fleet(migrations={}, jobs={}, pods={})
    monkeypatch.setattr(reconcile, "FLEET", f)
    return f


def test_the_older_migration_on_one_tracking_table_is_the_conflict(fleet: Fleet) -> None:
    first, second = body("first", "2026-01-01T00:00:00Z"), body("second", "2026-01-02T00:00:00Z")
    other = body("other", "2026-01-01T00:00:00Z", {**SPEC, "tracking": {"table": "other"}})
    fleet.migrations = index_of(first, second, other)
    assert reconcile._conflict(second, parse_spec(SPEC)) == "first"
    assert reconcile._conflict(first, parse_spec(SPEC)) == ""
    assert reconcile._conflict(other, parse_spec(other["spec"])) == ""


def test_same_creation_time_is_decided_by_name(fleet: Fleet) -> None:
    a, b = body("a", "2026-01-01T00:00:00Z"), body("b", "2026-01-01T00:00:00Z")
    fleet.migrations = index_of(a, b)
    assert reconcile._conflict(b, parse_spec(SPEC)) == "a"
    assert reconcile._conflict(a, parse_spec(SPEC)) == ""


def test_jobs_and_pods_are_indexed_slim_by_migration_and_job() -> None:
    job = {
        "metadata": {
            "name": "shop-abcde-0-plan",
            "labels": {"pgshift.dev/migration": "shop"},
            "managedFields": [{"big": "x" * 1000}],
        },
        "spec": {"template": {"spec": {"containers": [{"name": "runner"}]}}},
        "status": {"active": 1},
    }
    (key, slim), = job_entry("shop", job).items()  # fmt: skip
    assert key == ("shop", "shop")
    assert "managedFields" not in slim["metadata"] and "spec" not in slim
    pod = {"metadata": {"name": "p", "labels": {"job-name": "shop-abcde-0-plan"}}, "status": {}}
    assert list(pod_entry("shop", pod)) == [("shop", "shop-abcde-0-plan")]
    assert job_entry("shop", {"metadata": {"name": "x", "labels": {}}}) == {}


def test_a_finished_job_without_a_terminated_pod_in_the_index_is_read_again() -> None:
    """The Pod watch may lag behind the Job watch: the result must not be lost."""
    running = {"metadata": {"name": "p"}, "status": {"containerStatuses": [{"state": {}}]}}
    terminated = {"state": {"terminated": {"message": "{}"}}}
    ended = {"metadata": {"name": "p"}, "status": {"containerStatuses": [terminated]}}
    assert lagging([running], finished=True) and lagging([], finished=True)
    assert not lagging([ended], finished=True) and not lagging([running], finished=False)


def _job(*conditions: tuple[str, str]) -> dict[str, Any]:
    conds = [{"type": t, "status": s} for t, s in conditions]
    return {"kind": "Job", "status": {"conditions": conds, "active": 1}}


def _pod(phase: str, waiting: str = "") -> dict[str, Any]:
    state = {"waiting": {"reason": waiting}} if waiting else {}
    return {"kind": "Pod", "status": {"phase": phase, "containerStatuses": [{"state": state}]}}


def test_only_events_that_can_change_a_decision_reconcile() -> None:
    """Issue 15: a step's many Job and Pod events (created, bound, counted, finalizer removed)
    cost one reconcile each before; only a finished Job and a Pod that runs, ended or waits
    for a reason do now."""
    assert not matters(_job())
    assert not matters(_job(("SuccessCriteriaMet", "True")))
    assert matters(_job(("SuccessCriteriaMet", "True"), ("Complete", "True")))
    assert matters(_job(("Failed", "True")))
    assert not matters(_pod("Pending"))
    assert not matters(_pod("Pending", "ContainerCreating"))
    assert matters(_pod("Pending", "CreateContainerConfigError"))
    assert matters(_pod("Pending", "ImagePullBackOff"))
    assert matters(_pod("Running"))
    assert matters(_pod("Succeeded"))
