"""The Rollout gate decision, pure: API-shaped Deployment, ReplicaSet and Pod bodies in, a
verdict out. The same scenarios run on the local cluster in tests/e2e/test_rollout_gate.py."""

from __future__ import annotations

from typing import Any

from pgshift.controller.rollout import (
    DeploymentView,
    RolloutRecord,
    gate,
    record,
    record_from_status,
    record_to_status,
    selector_string,
    view_of,
)

UID = "dep-uid"


def template(version: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": f"web:{version}"}]},
    }


def deployment(
    version: str,
    *,
    generation: int = 1,
    observed: int | None = None,
    replicas: int = 2,
    updated: int | None = None,
    available: int | None = None,
    total: int | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "uid": UID, "generation": generation},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(version),
        },
        "status": {
            "observedGeneration": generation if observed is None else observed,
            "replicas": replicas if total is None else total,
            "updatedReplicas": replicas if updated is None else updated,
            "availableReplicas": replicas if available is None else available,
        },
    }


def replicaset(version: str, revision: int, owner: str = UID) -> dict[str, Any]:
    t = template(version)
    t["metadata"]["labels"]["pod-template-hash"] = f"h{version}"
    return {
        "metadata": {
            "name": f"web-h{version}",
            "uid": f"rs-{version}",
            "labels": {"app": "web", "pod-template-hash": f"h{version}"},
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "ownerReferences": [{"uid": owner, "controller": True, "kind": "Deployment"}],
        },
        "spec": {"template": t},
    }


def pod(version: str, *, terminating: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": f"web-h{version}-x",
        "labels": {"app": "web", "pod-template-hash": f"h{version}"},
        "ownerReferences": [{"uid": f"rs-{version}", "controller": True, "kind": "ReplicaSet"}],
    }
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


def known_at_v1() -> RolloutRecord:
    """Generation 1 of the Migration was first observed with web running template v1."""
    rec = record(1, [view_of("web", deployment("1"), [replicaset("1", 1)], [pod("1"), pod("1")])])
    assert rec is not None and rec.known == {"web": ("h1",)}
    return rec


def test_a_completed_rollout_of_a_new_template_opens() -> None:
    view = view_of(
        "web", deployment("2", generation=2), [replicaset("1", 1), replicaset("2", 2)], [pod("2")]
    )
    assert view.current_hash == "h2" and view.hashes == ("h1", "h2") and view.old_pods == 0
    verdict = gate(known_at_v1(), [view])
    assert verdict.open, verdict.message
    assert "web (h2)" in verdict.message


def test_kubectl_scale_does_not_open() -> None:
    # a scale bumps the Deployment's generation and completes "a rollout" of the same template.
    view = view_of("web", deployment("1", generation=2, replicas=5), [replicaset("1", 1)])
    verdict = gate(known_at_v1(), [view])
    assert not verdict.open
    assert "h1" in verdict.message and "scaling or undoing" in verdict.message


def test_hpa_style_replica_patch_does_not_open() -> None:
    # an HPA patches spec.replicas down and up; the template never changes.
    rec = known_at_v1()
    for replicas in (1, 3, 2):
        view = view_of(
            "web", deployment("1", generation=2, replicas=replicas), [replicaset("1", 1)]
        )
        assert not gate(rec, [view]).open


def test_rollout_undo_back_to_a_known_template_does_not_open() -> None:
    # v2 was being rolled out, then `kubectl rollout undo` went back: v1's ReplicaSet gets the
    # highest revision again and runs the Deployment's template.
    rs = [replicaset("1", 3), replicaset("2", 2)]
    view = view_of("web", deployment("1", generation=3), rs, [pod("1"), pod("1")])
    assert view.current_hash == "h1"
    assert not gate(known_at_v1(), [view]).open


def test_undo_to_a_template_known_from_history_does_not_open() -> None:
    # both v1 and v2 existed when the generation was first seen (v2 is the running one);
    # undoing to v1 is not a new application version.
    rec = record(
        1, [view_of("web", deployment("2", generation=2), [replicaset("1", 1), replicaset("2", 2)])]
    )
    assert rec is not None and rec.known["web"] == ("h1", "h2")
    view = view_of("web", deployment("1", generation=3), [replicaset("1", 3), replicaset("2", 2)])
    assert not gate(rec, [view]).open


def test_rolled_out_before_the_gate_opens_from_the_recorded_hashes() -> None:
    # v2 rolled out while expand steps ran, before the contract step became gated: the
    # record taken when the generation was first seen says v2 is new.
    rec = known_at_v1()
    view = view_of("web", deployment("2", generation=2), [replicaset("1", 1), replicaset("2", 2)])
    assert gate(rec, [view]).open


def test_unfinished_rollouts_do_not_open() -> None:
    rec, rs = known_at_v1(), [replicaset("1", 1), replicaset("2", 2)]
    cases = {
        "not observed": deployment("2", generation=2, observed=1),
        "updated short": deployment("2", generation=2, updated=1),
        "available short": deployment("2", generation=2, available=1),
        "surge left": deployment("2", generation=2, total=3),
    }
    for what, body in cases.items():
        verdict = gate(rec, [view_of("web", body, rs)])
        assert not verdict.open, what
        assert "Deployment web" in verdict.message


def test_an_old_pod_left_keeps_it_closed_terminating_ones_included() -> None:
    rec, rs = known_at_v1(), [replicaset("1", 1), replicaset("2", 2)]
    for old in (pod("1"), pod("1", terminating=True)):
        view = view_of("web", deployment("2", generation=2), rs, [pod("2"), pod("2"), old])
        assert view.old_pods == 1
        verdict = gate(rec, [view])
        assert not verdict.open and "1 Pod(s) of older ReplicaSets" in verdict.message


def test_a_paused_deployment_with_a_new_template_but_no_replicaset_stays_closed() -> None:
    view = view_of("web", deployment("2", generation=2), [replicaset("1", 1)])
    assert view.current_hash == ""
    assert not gate(known_at_v1(), [view]).open


def test_replicasets_of_other_owners_are_not_counted() -> None:
    stranger = replicaset("9", 5, owner="other")
    view = view_of("web", deployment("2", generation=2), [replicaset("2", 2), stranger])
    assert view.hashes == ("h2",) and view.current_hash == "h2"


def test_a_missing_deployment_keeps_it_closed_and_says_so() -> None:
    rec = record(1, [view_of("web", None)])
    assert rec is not None and rec.known == {"web": ()}
    verdict = gate(rec, [view_of("web", None)])
    assert not verdict.open and verdict.missing == ("web",)
    assert "Deployment web not found (yet)" in verdict.message
    # it comes in a later sync wave: its first template is new.
    later = view_of("web", deployment("1"), [replicaset("1", 1)])
    assert gate(rec, [later]).open


def test_every_deployment_of_the_list_must_have_rolled_out() -> None:
    rec = RolloutRecord(generation=1, known={"web": ("h1",), "api": ("h1",)})
    web = view_of("web", deployment("2", generation=2), [replicaset("2", 2)])
    api_old = DeploymentView(name="api", exists=True, generation=1, observed_generation=1,
                             desired=1, replicas=1, updated=1, available=1, current_hash="h1",
                             hashes=("h1",))  # fmt: skip
    verdict = gate(rec, [web, api_old])
    assert not verdict.open and "Deployment api" in verdict.message
    api_new = DeploymentView(**{**api_old.__dict__, "current_hash": "h7", "hashes": ("h1", "h7")})
    assert gate(rec, [web, api_new]).open


def test_an_unobservable_deployment_records_nothing_and_stays_closed() -> None:
    forbidden = DeploymentView(name="web", exists=False, problem="forbidden")
    assert record(1, [forbidden]) is None
    verdict = gate(None, [forbidden])
    assert not verdict.open and "forbidden" in verdict.message and not verdict.missing


def test_the_record_survives_status() -> None:
    rec = RolloutRecord(generation=3, known={"web": ("a", "b"), "api": ()}, missing=("api",))
    assert record_from_status(record_to_status(rec)) == rec


def test_selector_string() -> None:
    sel = {
        "matchLabels": {"app": "web", "tier": "fe"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["a", "b"]},
            {"key": "x", "operator": "NotIn", "values": ["c"]},
            {"key": "y", "operator": "Exists"},
            {"key": "z", "operator": "DoesNotExist"},
        ],
    }
    assert selector_string(sel) == "app=web,tier=fe,env in (a,b),x notin (c),y,!z"
