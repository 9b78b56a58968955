"""Every runner command the controller builds is one the runner's own CLI accepts: each Job's
container command is parsed by `pgshift.cli.build_parser()` and read by `cli.settings_from`,
for every action and option combination the typed intent allows and for what the machine
decides in the scenarios that produce each of them. An unknown flag, a missing value or a
malformed one fails here, not in a Pod."""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
from collections.abc import Iterator

import pytest

from pgshift.cli import build_parser, settings_from
from pgshift.controller.api import BackupScope, Destructive, MigrationSpec
from pgshift.controller.config import Settings
from pgshift.controller.decide import decide
from pgshift.controller.intent import Action, BackupTarget, Decision, RestoreTarget, RunJob, Until
from pgshift.controller.jobs import build_job
from pgshift.controller.observe import SourceState
from pgshift.migrations import Layout
from tests.unit.controller.test_decide import (
    B1,
    C1,
    DIGEST,
    E1,
    REF,
    finished,
    observe,
    plan_result,
    spec,
    step,
)
from tests.unit.controller.test_decide_rollback import rollback_plan
from tests.unit.controller.test_restores import SHA as RESTORE_SHA
from tests.unit.controller.test_restores import backed_up

#: specs that change the spec-derived flags: target, overrides, rewrite, layout, an image
#: source, tracking and timeouts.
SPECS: dict[str, MigrationSpec] = {
    "default": spec(),
    "target-overrides-no-rewrite": spec(
        target="0003_drop",
        overrides={"0003_drop": {"phase": "contract"}},
        safety={"rewrite": False, "lockWait": "30s", "lockTimeout": "500ms"},
        backfill={"targetBatchTime": "1s", "pause": "50ms"},
    ),
    "image-source-tracking": spec(
        source={"image": {"reference": "registry/app@sha256:1", "path": "/m"}, "layout": "plain"},
        tracking={"schema": "ops", "table": "migrations"},
    ),
}


def _intents() -> Iterator[RunJob]:
    """Every combination of the intent's options, per action."""
    for digest, resume in itertools.product(("", DIGEST), ("", "0001_add")):
        yield RunJob(Action.PLAN, expect_digest=digest, resume_edited=resume)
    for drift in (("0001_add",), ("0001_add", "0002_fill")):
        yield RunJob(Action.PLAN, allow_drift=drift)
        yield RunJob(Action.APPLY, allow_drift=drift, destructive=Destructive.ALLOW)
    stops: list[tuple[str, Until | None]] = [("", None), ("c1-0", None), ("", Until.BACKFILL)]
    for digest, (stop, until), policy, approvals, resume in itertools.product(
        ("", DIGEST),
        stops,
        (None, *Destructive),
        ((), ("0003_drop",), ("*",), ("c1-0", "0003_drop", "*")),
        ("", "0001_add"),
    ):
        yield RunJob(
            Action.APPLY,
            expect_digest=digest,
            stop_before=stop,
            until=until,
            destructive=policy,
            approvals=approvals,
            resume_edited=resume,
        )
    for tables in ((), ("public.users",), ("public.users", "public.orders")):
        scope = BackupScope.AFFECTED_TABLES if tables else BackupScope.DATABASE
        target = BackupTarget("/backups/shop/shop/x.dump", keep=5, scope=scope, tables=tables)
        yield RunJob(Action.BACKUP, backup=target)
    yield RunJob(Action.BASELINE, migration="0002_fill")
    for policy, approvals in itertools.product((None, *Destructive), ((), ("0003_drop",))):
        yield RunJob(
            Action.ROLLBACK,
            migration="0001_add",
            expect_digest=DIGEST,
            destructive=policy,
            approvals=approvals,
        )
    yield RunJob(Action.MARK_APPLIED, migration="0001_add")
    sha = "ab" * 32
    yield RunJob(
        Action.RESTORE,
        restore=RestoreTarget("/backups/shop/shop/x.dump", sha256=sha, restore_id=f"uid-1/{sha}"),
    )


def _runs_of(decisions: list[Decision]) -> list[RunJob]:
    return [d.run for d in decisions if d.run is not None]


def _machine_runs() -> list[RunJob]:
    """What the machine decides on its way through scenarios that use every option."""
    out: list[Decision] = []
    d = decide(observe())  # plan, with the digest
    out.append(d)
    out.append(decide(observe(source=SourceState())))  # an image source: no digest yet
    d = step(d.memory, job=finished(d, plan_result(E1, B1, C1)))  # apply, stop before c1-0
    out.append(d)
    d = step(d.memory, job=finished(d, {"ok": True, "appliedCount": 2, "pendingCount": 1}))
    gated = step(d.memory, job=finished(d, plan_result(C1, applied=2)))
    approve = {"pgshift.dev/approve": "0003_drop"}
    d = step(gated.memory, annotations=approve)  # backup of the affected tables
    out.append(d)
    result = {"ok": True, "backup": {"file": "/b", "size": 1, "sha256": "f" * 64}}
    out.append(step(d.memory, annotations=approve, job=finished(d, result)))  # apply, approved
    wildcard = {"pgshift.dev/approve": "*"}
    d = step(gated.memory, annotations=wildcard)  # the backup before the destructive step
    out.append(step(d.memory, annotations=wildcard, job=finished(d, result)))  # apply, "*"
    whole = spec(backup={"when": "Always", "scope": "Database", "volume": {"claimName": "b"}})
    d = decide(observe(spec=whole))
    out.append(step(d.memory, spec=whole, job=finished(d, plan_result(E1))))  # whole database
    truncated = {**plan_result(E1), "truncated": True}
    d = decide(observe())
    out.append(step(d.memory, job=finished(d, truncated)))  # until the backfill phase
    resume = {"pgshift.dev/resume-edited": "0001_add"}
    d = step(d.memory, annotations=resume)  # plan with --resume-edited
    out.append(d)
    out.append(step(d.memory, annotations=resume, job=finished(d, plan_result(E1))))
    d = decide(observe())
    d = step(d.memory, job=finished(d, plan_result(E1)))
    out.append(step(d.memory, annotations={"pgshift.dev/mark-applied": "0001_add"}))
    base = spec(baseline={"upTo": "0002_fill"})
    d = decide(observe(spec=base))
    out.append(step(d.memory, spec=base, job=finished(d, plan_result(E1, B1))))
    back = spec(target="0000_init", rollback="Allow")
    d = decide(observe(spec=back))
    out.append(d)  # plan --rollback-to
    d = step(d.memory, spec=back, job=finished(d, rollback_plan()))  # the backup first
    out.append(step(d.memory, spec=back, job=finished(d, result)))  # rollback --to
    restore = {"pgshift.dev/restore": f"{REF.uid}/{RESTORE_SHA}"}
    out.append(step(backed_up(), spec=spec(suspend=True), annotations=restore))
    return _runs_of(out)


def _strict_parser() -> argparse.ArgumentParser:
    """The CLI's parser, refusing abbreviations: a Job's `--until` for `--until-phase` would
    break as soon as another flag shares the prefix."""
    parser = build_parser()
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.allow_abbrev = False
    return parser


def _parse(argv: list[str]) -> argparse.Namespace:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return _strict_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"the CLI refuses {argv}: {err.getvalue().strip()}")


def _command(run: RunJob, spec_: MigrationSpec) -> list[str]:
    job = build_job(REF, spec_, Settings(), run, seq=3)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert "args" not in container
    command: list[str] = container["command"]
    return command


def _check(run: RunJob, spec_: MigrationSpec) -> None:
    command = _command(run, spec_)
    assert command[0] == "pgshift"
    args = _parse(command[1:])
    assert args.command == run.action.value
    assert args.output == "json" and args.result_file == "/dev/termination-log"
    if run.action is Action.BACKUP:
        assert run.backup is not None
        assert args.to == run.backup.path and int(args.keep) == run.backup.keep >= 1
        assert args.tables == list(run.backup.tables)
        # the source and the tracking table: the manifest saves this Migration's rows.
        assert args.dir == "/migrations" and args.tracking_table == spec_.tracking.table
        return
    if run.action is Action.RESTORE:
        assert run.restore is not None
        assert args.from_ == run.restore.path and args.clean
        assert args.restore_id == run.restore.restore_id and args.dir == "/migrations"
        assert args.tracking_table == spec_.tracking.table
        return
    settings_from(args)  # durations, names, policy, digest: what the runner reads
    assert args.tracking_schema == spec_.tracking.schema
    assert Layout(args.layout) is Layout(spec_.source.layout.value)
    assert (args.overrides is not None) == bool(spec_.overrides)
    if run.action is Action.MARK_APPLIED:
        assert args.name == run.migration
        return
    if run.action is Action.BASELINE:
        assert args.up_to == run.migration
        return
    assert args.expect_digest == (run.expect_digest or None)
    assert args.resume_edited is bool(run.resume_edited)
    # each accepted migration by name, never the bare flag (which accepts any edited file).
    assert (args.allow_drift or []) == list(run.allow_drift)
    assert settings_from(args).allow.drift_only == frozenset(run.allow_drift)
    assert not settings_from(args).allow.drift
    assert args.no_rewrite is not spec_.safety.rewrite
    if run.action is Action.ROLLBACK:
        assert args.to == run.migration
        assert args.approve == list(run.approvals)
        assert args.destructive == (run.destructive or Destructive.ALLOW).value
    if run.action is Action.APPLY:
        assert args.stop_before == ([run.stop_before] if run.stop_before else None)
        assert args.until_phase == (run.until.value if run.until else None)
        assert args.approve == list(run.approvals)
        assert args.destructive == (run.destructive or Destructive.ALLOW).value
        assert args.target == ([spec_.target] if spec_.target else None)
    else:
        assert args.target is None  # the plan lists everything; the controller cuts it


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_every_intent_renders_a_command_the_cli_parses(spec_name: str) -> None:
    intents = list(_intents())
    assert {r.action for r in intents} == set(Action)
    for run in intents:
        _check(run, SPECS[spec_name])


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_what_the_machine_decides_renders_a_command_the_cli_parses(spec_name: str) -> None:
    runs = _machine_runs()
    assert {r.action for r in runs} == set(Action)
    applies = [r for r in runs if r.action is Action.APPLY]
    # the scenarios reach every apply option the machine sets
    assert any(r.stop_before for r in applies) and any(r.until for r in applies)
    assert any("*" in r.approvals for r in applies) and any(r.resume_edited for r in applies)
    assert any(r.backup and r.backup.tables for r in runs)
    assert any(r.backup and not r.backup.tables for r in runs)
    assert any(r.action is Action.PLAN and not r.expect_digest for r in runs)
    for run in runs:
        _check(run, SPECS[spec_name])


def test_a_flag_the_cli_does_not_know_fails_the_check() -> None:
    """The check itself: an argv with an unknown flag is refused by the parser."""
    command = _command(RunJob(Action.PLAN, expect_digest=DIGEST), SPECS["default"])
    with pytest.raises(pytest.fail.Exception, match="--no-such-flag"):
        _parse([*command[1:], "--no-such-flag"])
    with pytest.raises(pytest.fail.Exception, match="--until"):
        _parse([*command[1:], "--until", "backfill"])  # an abbreviation of --until-phase
