"""spec.target below what is applied: the rollback policy, the approval, the backup first."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pgshift.controller.decide import decide
from pgshift.controller.intent import Action, Decision
from pgshift.controller.jobs import command
from pgshift.controller.rollout import DeploymentView
from pgshift.controller.status import REASONS, Reason, recovery
from tests.unit.controller.test_decide import DIGEST, REF, args_of, finished, observe, spec, step

UNDO = ["0003_c", "0002_b", "0001_a"]


def rollback_plan(
    undo: list[str] = UNDO, *, generation: int = 1, **part: list[str]
) -> dict[str, Any]:
    """A plan Job's summary: nothing pending, and what a rollback to 0000_init undoes."""
    return {
        "command": "plan",
        "ok": True,
        "sourceDigest": DIGEST,
        "steps": [],
        "pending": [],
        "pendingCount": 0,
        "appliedCount": 4,
        "lastApplied": undo[0],
        "migrations": [{"name": n, "state": "applied"} for n in ["0000_init", *reversed(undo)]],
        "rollback": {"to": "0000_init", "undo": undo, **part},
    }


def planned(policy: str, result: dict[str, Any] | None = None, **over: Any) -> Decision:
    """The decision after the plan Job of a Migration with target 0000_init and `policy`."""
    s = spec(target="0000_init", rollback=policy, **over)
    d = decide(observe(spec=s))
    assert d.run and d.run.action is Action.PLAN
    assert command(s, d.run)[command(s, d.run).index("--rollback-to") + 1] == "0000_init"
    return step(d.memory, spec=s, job=finished(d, result or rollback_plan()))


def test_deny_is_complete_with_a_rollback_disabled_message() -> None:
    d = planned("Deny")
    assert d.run is None and d.reason is Reason.ROLLBACK_DISABLED
    assert REASONS[d.reason].complete and not REASONS[d.reason].stalled
    assert "0003_c, 0002_b, 0001_a" in d.message and "spec.rollback is Deny" in d.message


def test_deny_is_the_default() -> None:
    s = spec(target="0000_init")
    d = decide(observe(spec=s))
    d = step(d.memory, spec=s, job=finished(d, rollback_plan()))
    assert d.reason is Reason.ROLLBACK_DISABLED


def test_require_approval_waits_for_the_value_naming_generation_and_newest_undone() -> None:
    s = spec(target="0000_init", rollback="RequireApproval")
    d = planned("RequireApproval")
    assert d.run is None and d.reason is Reason.AWAITING_ROLLBACK_APPROVAL
    assert "pgshift.dev/approve-rollback=1:0003_c" in d.message
    assert d.memory.rollback and d.memory.rollback["approval"] == "1:0003_c"
    assert any("approve-rollback=1:0003_c" in r for r in recovery(d.reason, "shop", d.memory))
    for wrong in ("1:0002_b", "0:0003_c", "2:0003_c", "0003_c", "*"):
        held = step(d.memory, spec=s, annotations={"pgshift.dev/approve-rollback": wrong})
        assert held.run is None and held.reason is Reason.AWAITING_ROLLBACK_APPROVAL, wrong
    approve = {"pgshift.dev/approve-rollback": "1:0003_c"}
    # approved: a whole-database backup first, whatever spec.backup says.
    b = step(d.memory, spec=s, annotations=approve)
    assert b.run and b.run.action is Action.BACKUP
    assert b.run.backup and b.run.backup.tables == () and b.run.backup.scope.value == "Database"
    taken = {"ok": True, "backup": {"file": "/backups/x.dump", "size": 1, "sha256": "f" * 64}}
    r = step(b.memory, spec=s, annotations=approve, job=finished(b, taken))
    assert r.run and r.run.action is Action.ROLLBACK and r.reason is Reason.ROLLING_BACK
    assert args_of(r) == ["--expect-digest", DIGEST, "--to", "0000_init", "--destructive", "Allow"]
    assert r.memory.approved_rollback == "1:0003_c"
    # done: planned again, nothing to undo, Complete; status keeps what was undone.
    done = {"command": "rollback", "ok": True, "rollback": {"to": "0000_init", "undone": UNDO}}
    p = step(r.memory, spec=s, annotations=approve, job=finished(r, done))
    assert p.run and p.run.action is Action.PLAN
    empty = {
        **rollback_plan(),
        "rollback": {"to": "0000_init", "undo": []},
        "lastApplied": "0000_init",
    }
    c = step(p.memory, spec=s, annotations=approve, job=finished(p, empty))
    assert c.reason is Reason.COMPLETE
    assert c.memory.rollback == {"to": "0000_init", "undone": UNDO}


def test_a_lowered_target_of_a_later_generation_needs_a_new_approval() -> None:
    """A git revert lowering spec.target (a new generation) never runs down files by itself,
    even with an approval left over from an earlier rollback."""
    s = spec(target="0000_init", rollback="RequireApproval")
    later = replace(REF, generation=5)
    d = decide(observe(spec=s, ref=later))
    d = decide(
        observe(
            d.memory,
            spec=s,
            ref=later,
            job=finished(d, rollback_plan()),
            annotations={"pgshift.dev/approve-rollback": "1:0003_c"},
        )
    )
    assert d.run is None and d.reason is Reason.AWAITING_ROLLBACK_APPROVAL
    assert "approve-rollback=5:0003_c" in d.message and "names another rollback" in d.message


def test_allow_runs_non_destructive_down_files_without_approval() -> None:
    d = planned("Allow")
    assert d.run and d.run.action is Action.BACKUP
    taken = {"ok": True, "backup": {"file": "/b.dump", "size": 1, "sha256": "f" * 64}}
    s = spec(target="0000_init", rollback="Allow")
    r = step(d.memory, spec=s, job=finished(d, taken))
    assert r.run and r.run.action is Action.ROLLBACK
    # a destructive step the plan did not see would still stop the runner.
    assert args_of(r)[-2:] == ["--destructive", "RequireApproval"]


def test_allow_needs_the_approval_for_destructive_down_files() -> None:
    d = planned("Allow", rollback_plan(destructive=["0002_b"]))
    assert d.reason is Reason.AWAITING_ROLLBACK_APPROVAL
    assert "0002_b are destructive" in d.message


def test_contract_down_steps_wait_for_the_gate() -> None:
    # contract.after Approval (the default): the rollback approval opens it.
    d = planned("Allow", rollback_plan(contract=["0003_c"]))
    assert d.reason is Reason.AWAITING_ROLLBACK_APPROVAL and "contract steps" in d.message
    # Rollout: the application's rollback must have completed.
    rollout = {"after": "Rollout", "rollout": {"deployments": ["web"]}}
    s = spec(target="0000_init", rollback="Allow", contract=rollout)
    d = decide(observe(spec=s))
    rolling = DeploymentView(
        "web",
        True,
        generation=2,
        observed_generation=2,
        desired=2,
        replicas=3,
        updated=1,
        available=2,
        current_hash="h1",
        hashes=("h0", "h1"),
        old_pods=2,
    )
    held = decide(
        observe(
            d.memory,
            spec=s,
            job=finished(d, rollback_plan(contract=["0003_c"])),
            rollout=(rolling,),
        )
    )
    assert held.run is None and held.reason is Reason.AWAITING_ROLLOUT
    assert "application's rollback" in held.message
    done = replace(rolling, replicas=2, updated=2, old_pods=0)
    # undone to a known template (h1 was there before): that is the rollback, it opens.
    opened = step(held.memory, spec=s, rollout=(done,))
    assert opened.run and opened.run.action is Action.BACKUP


def test_a_missing_down_file_stalls_naming_it_and_the_backup() -> None:
    s = spec(target="0000_init", rollback="RequireApproval")
    d = decide(observe(spec=s))
    memory = replace(d.memory, last_backup={"path": "/backups/shop/shop/1.dump"})
    d = step(memory, spec=s, job=finished(d, rollback_plan(missing=["0002_b"])))
    assert d.run is None and d.reason is Reason.ROLLBACK_UNAVAILABLE
    assert REASONS[d.reason].stalled
    assert "0002_b has no down file (0002_b.down.sql)" in d.message
    assert "/backups/shop/shop/1.dump" in d.message


def test_a_rollback_needs_a_backup_volume() -> None:
    d = planned("Allow", backup={"when": "Never"})
    assert d.reason is Reason.ROLLBACK_UNAVAILABLE and "claimName" in d.message


def test_status_keeps_the_rollback_across_a_restart() -> None:
    d = planned("RequireApproval")
    again = step(d.memory, spec=spec(target="0000_init", rollback="RequireApproval"))
    assert again.memory.rollback == d.memory.rollback
    assert again.memory.plan and again.memory.plan.rollback == d.memory.plan.rollback  # type: ignore[union-attr]




def test_a_rollback_stopped_part_way_resumes_under_the_same_approval() -> None:
    s = spec(target="0000_init", rollback="RequireApproval")
    approve = {"pgshift.dev/approve-rollback": "1:0003_c"}
    d = planned("RequireApproval")
    b = step(d.memory, spec=s, annotations=approve)
    taken = {"ok": True, "backup": {"file": "/b.dump", "size": 1, "sha256": "f" * 64}}
    r = step(b.memory, spec=s, annotations=approve, job=finished(b, taken))
    assert r.run and r.run.action is Action.ROLLBACK
    # killed after undoing 0003_c: the Job left no result; retried, planned again.
    lost = step(r.memory, spec=s, annotations=approve, job=finished(r, {}, ok=False))
    assert lost.reason is Reason.RETRYING
    again = step(replace(lost.memory, not_before=""), spec=s, annotations=approve)
    assert again.run and again.run.action is Action.PLAN
    resumed = step(
        again.memory, spec=s, annotations=approve,
        job=finished(again, rollback_plan(["0002_b", "0001_a"])),
    )  # fmt: skip
    # the same approval covers what is left; the backup was taken already.
    assert resumed.run and resumed.run.action is Action.ROLLBACK, resumed.message
    # but not more than it named: a new 0004_d applied since needs a new approval.
    more = step(
        again.memory, spec=s, annotations=approve,
        job=finished(again, rollback_plan(["0004_d", "0002_b", "0001_a"])),
    )  # fmt: skip
    assert more.reason is Reason.AWAITING_ROLLBACK_APPROVAL
