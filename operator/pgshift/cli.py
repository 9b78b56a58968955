"""`pgshift`: argparse over `commands`. Parses flags, prints results, maps errors to exit codes.

Only `PgshiftError` is caught: it becomes one line `error[<Code>]: <message>` on stderr and its
exit code. Anything else is a bug and keeps its traceback. Every line printed is redacted.

SIGTERM/SIGINT (`pgshift.signals`): the handler is installed before anything slow (the driver
and the planner are imported later, in `dispatch`), so a signal at any point after Python's own
start-up ends with an `Interrupted` summary, in the result file too, and exit code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from pgshift import signals
from pgshift.contract.summary import RunFailure, RunSummary, Stopped, StopReason
from pgshift.engine.result import Failure, Summary, bounded_json
from pgshift.errors import EXIT_BAD_INPUT, Interrupted, PgshiftError, UsageError
from pgshift.logs import configure, get_logger, redact, redact_values
from pgshift.migrations.model import Layout
from pgshift.settings import (
    Allow,
    BackfillSettings,
    DestructivePolicy,
    DumpSettings,
    RunSettings,
    Selection,
    Timeouts,
    Tracking,
    format_duration,
    parse_duration,
)

#: the flags' defaults, read from the settings dataclasses (the one source; the Migration's
#: spec types read the same ones, tests/unit/controller/test_crd.py).
_TRACKING, _TIMEOUTS, _BACKFILL = Tracking(), Timeouts(), BackfillSettings()
_SELECTION, _DUMP = Selection(), DumpSettings()
_LOCK_WAIT = format_duration(_TIMEOUTS.lock_wait)


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are our one line (exit 2) naming the option."""

    def error(self, message: str) -> NoReturn:
        print(redact(f"error[Usage]: {self.prog}: {message}"), file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def _common(p: argparse.ArgumentParser, *, database: bool = True, source: bool = True) -> None:
    if source:
        p.add_argument("--dir", default=".", help="migrations folder (default: .)")
        p.add_argument(
            "--layout", default=Layout.AUTO.value, help="|".join(v.value for v in Layout)
        )
        p.add_argument("--overrides", help="YAML/JSON file: migration name -> directives")
    if database:
        p.add_argument("--database-url", help="postgresql:// URL (default: env DATABASE_URL)")
        p.add_argument("--tracking-schema", default=_TRACKING.schema)
        p.add_argument("--tracking-table", default=_TRACKING.table)
    p.add_argument("--output", default="text", help="text|json")
    p.add_argument("--result-file", help="write the bounded (<= 4 KiB) JSON summary here")


def _optional_source(p: argparse.ArgumentParser) -> None:
    """backup / restore: the source, when given, names this Migration's files (the progress
    rows a backup saves and a restore rewrites; what a restore makes pending again)."""
    p.add_argument("--dir", default=None, help="migrations folder (optional)")
    p.add_argument("--layout", default=Layout.AUTO.value, help="|".join(v.value for v in Layout))
    p.add_argument("--overrides", help="YAML/JSON file: migration name -> directives")


def _run_flags(p: argparse.ArgumentParser) -> None:
    # append, not store: a repeated --target/--stop-before is refused (settings_from), where
    # argparse would silently keep the last and run past the first stop.
    p.add_argument("--target", action="append", help="stop after this migration")
    p.add_argument("--until-phase", help="expand|backfill|contract: stop at the first later step")
    p.add_argument("--stop-before", action="append", help="stop before this step key")
    p.add_argument("--expect-digest", help="refuse a source whose digest differs (sha256:...)")
    p.add_argument("--allow-out-of-order", action="store_true")
    # bare: any edited file; `--allow-drift=NAME` (repeatable): only that migration's edit.
    p.add_argument(
        "--allow-drift",
        action="append",
        nargs="?",
        const="*",
        metavar="NAME",
        help="run past an edited applied file (=NAME: only that migration; repeatable)",
    )
    p.add_argument(
        "--resume-edited",
        action="store_true",
        help="finish a partly applied, edited file when its applied steps are unchanged",
    )
    p.add_argument("--allow-unknown", action="store_true")
    p.add_argument("--no-rewrite", action="store_true", help="run statements exactly as written")
    _enable_rule_flag(p)
    # the run settings' flags: each default from the settings dataclasses, shown in its help.
    duration = format_duration
    for flag, default, what in (
        ("--lock-wait", _LOCK_WAIT, "wait for the migration lock"),
        ("--lock-timeout", duration(_TIMEOUTS.lock_timeout), "lock_timeout for strong locks"),
        ("--lock-retries", str(_TIMEOUTS.lock_retries), "retries after 55P03/40P01"),
        (
            "--statement-timeout",
            duration(_TIMEOUTS.statement_timeout),
            "statement_timeout, 0s for none",
        ),
        ("--target-batch-time", duration(_BACKFILL.target_batch_time), "backfill batch time"),
        ("--batch-pause", duration(_BACKFILL.batch_pause), "pause between backfill batches"),
    ):
        p.add_argument(flag, default=default, help=f"{what} (default {default})")
    p.add_argument(
        "--approve", action="append", default=[], help="step key or migration (repeatable)"
    )
    p.add_argument(
        "--destructive",
        default=_SELECTION.destructive.value,
        help="|".join(v.value for v in DestructivePolicy),
    )


def _enable_rule_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--enable-rule", action="append", default=[], metavar="RULE",
        help="also report this opt-in lint rule (repeatable, comma-separated; 'style' = all)",
    )


def _enabled_rules(values: list[str]) -> frozenset[str]:
    """`--enable-rule` values -> opt-in rule ids; an unknown id is a usage error."""
    if not values:  # the rules (and pglast) load only when a command asks for one
        return frozenset()
    from pgshift.safety.rules import RULES, STYLE

    out: set[str] = set()
    for value in values:
        for rule in filter(None, (v.strip() for v in value.split(","))):
            if rule == "style":
                out |= STYLE
            elif rule not in RULES:
                raise UsageError(f"--enable-rule: {rule!r} is not a lint rule (docs/rules/)")
            else:
                out.add(rule)
    return frozenset(out)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pgshift", description="Ship PostgreSQL schema migrations safely.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("plan", help="applied / pending / drifted, and the pending steps")
    _common(p)
    _run_flags(p)
    p.add_argument(
        "--rollback-to",
        metavar="NAME",
        help="also report what `pgshift rollback --to NAME` would undo (when NAME is applied)",
    )
    p = sub.add_parser("apply", help="run pending steps under the migration lock")
    _common(p)
    _run_flags(p)
    p = sub.add_parser(
        "rollback", help="undo the migrations applied after --to NAME by their down files"
    )
    _common(p)
    _run_flags(p)
    p.add_argument("--to", required=True, metavar="NAME", help="the migration to go back to")
    p.add_argument(
        "--backup-dir",
        default=os.environ.get("PGSHIFT_BACKUP_DIR") or None,
        metavar="DIR",
        help="a whole-database backup here before the first step (default: env "
        "PGSHIFT_BACKUP_DIR; none when unset)",
    )
    p.add_argument("--keep", metavar="N", help="keep the N newest *.dump files in --backup-dir")
    p = sub.add_parser("status", help="what the database holds (db:check)")
    _common(p)
    p = sub.add_parser("lint", help="lint findings (no database)")
    _common(p, database=False)
    p.add_argument("--no-rewrite", action="store_true")
    _enable_rule_flag(p)
    p.add_argument(
        "--server-version",
        metavar="MAJOR",
        help="refuse syntax this PostgreSQL major (13-18) lacks, as plan/apply do on a server",
    )
    p = sub.add_parser("baseline", help="mark every migration up to NAME applied, without running")
    _common(p)
    p.add_argument("--up-to", required=True, metavar="NAME")
    p.add_argument("--lock-wait", default=_LOCK_WAIT)
    p.add_argument("--expect-digest")
    p = sub.add_parser("mark-applied", help="mark one migration applied, without running it")
    _common(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--lock-wait", default=_LOCK_WAIT)
    p.add_argument("--expect-digest")
    p = sub.add_parser("backup", help="pg_dump (custom format), checksum, verify")
    _common(p, source=False)
    _optional_source(p)
    p.add_argument("--to", required=True, metavar="FILE")
    p.add_argument("--tables", nargs="+", default=[], metavar="TABLE")
    p.add_argument("--keep", metavar="N", help="keep the N newest *.dump files in the folder")
    dump_wait = format_duration(_DUMP.lock_wait)
    p.add_argument(
        "--lock-wait", default=dump_wait, help=f"pg_dump --lock-wait-timeout (default {dump_wait})"
    )
    p = sub.add_parser("restore", help="pg_restore into an empty database (or --clean)")
    _common(p, source=False)
    _optional_source(p)
    p.add_argument("--from", dest="from_", required=True, metavar="FILE")
    p.add_argument("--clean", action="store_true")
    p.add_argument(
        "--restore-id",
        default="",
        metavar="ID",
        help="record this id as consumed in the database; a second restore with it is refused",
    )
    p.add_argument("--lock-wait", default=_LOCK_WAIT, help="wait for the migration lock")
    p = sub.add_parser(
        "verify", help="compare the schema with what the migrations build on a scratch database"
    )
    _common(p)
    p.add_argument(
        "--scratch-url",
        help="postgresql:// URL of a server where the role may create databases "
        "(default: env SCRATCH_DATABASE_URL)",
    )
    p.add_argument(
        "--ignore", action="append", default=[], metavar="PATTERN",
        help="leave out drift of objects matching NAME or KIND:NAME (fnmatch; repeatable)",
    )
    p.add_argument(
        "--baseline", metavar="NAME",
        help="the database was adopted by `baseline --up-to NAME`: compare only later objects",
    )
    p.add_argument(
        "--allow-external", action="store_true",
        help="replay statements whose effects reach past the database (roles, ALTER SYSTEM...)",
    )
    p.add_argument("--lock-wait", default=_LOCK_WAIT)
    p.add_argument("--no-rewrite", action="store_true", help="build the expected schema as written")
    # listed for --help; main() hands `operator ...` to the controller before parsing.
    p = sub.add_parser("operator", help="run the Kubernetes operator (kopf)", add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


# --- flags -> settings ---------------------------------------------------------------------


def _int(value: str, option: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{option}: {value!r} is not a whole number") from None
    if number < minimum:
        raise UsageError(f"{option}: {number} must be at least {minimum}")
    return number


def _one_name(values: list[str] | str | None, option: str) -> str | None:
    """The one name an option that stops a run was given: an empty name or a second one would
    leave a stop ignored (`--stop-before ''` matched no step and stopped nothing)."""
    if values is None:
        return None
    names = [values] if isinstance(values, str) else values
    if len(names) > 1:
        raise UsageError(
            f"{option}: given {len(names)} times ({', '.join(map(repr, names))}); "
            "a run takes one"
        )
    if not names[0].strip():
        raise UsageError(f"{option}: {names[0]!r} is empty: name a migration or step key")
    return names[0]


def settings_from(args: argparse.Namespace) -> RunSettings:

    def get(name: str, default: Any = None) -> Any:
        """A flag's value; a verb without that flag gets `default` (status has no --target)."""
        return getattr(args, name, default)

    output = get("output")
    if output not in ("text", "json"):
        raise UsageError(f"--output: {output!r} is not one of text, json")
    tracking = Tracking(
        schema=get("tracking_schema", _TRACKING.schema),
        table=get("tracking_table", _TRACKING.table),
    )
    for option, value in (
        ("--tracking-schema", tracking.schema),
        ("--tracking-table", tracking.table),
    ):
        if not value or len(value.encode()) > 63:
            raise UsageError(f"{option}: {value!r} must be 1 to 63 bytes")
    # a verb without a flag (status has no --lock-timeout) runs with the settings' default.
    timeouts = Timeouts(
        lock_wait=parse_duration(get("lock_wait", _TIMEOUTS.lock_wait), "--lock-wait"),
        lock_timeout=parse_duration(get("lock_timeout", _TIMEOUTS.lock_timeout), "--lock-timeout"),
        statement_timeout=parse_duration(
            get("statement_timeout", _TIMEOUTS.statement_timeout), "--statement-timeout"
        ),
        lock_retries=_int(get("lock_retries", str(_TIMEOUTS.lock_retries)), "--lock-retries"),
    )
    backfill = BackfillSettings(
        target_batch_time=parse_duration(
            get("target_batch_time", _BACKFILL.target_batch_time), "--target-batch-time"
        ),
        batch_pause=parse_duration(get("batch_pause", _BACKFILL.batch_pause), "--batch-pause"),
    )
    if backfill.target_batch_time <= 0:
        raise UsageError("--target-batch-time: must be more than 0")
    from pgshift.safety.model import Phase  # here: pglast loads after the signal handler

    phases = [p.value for p in Phase]
    until = get("until_phase")
    if until is not None and until not in phases:
        raise UsageError(f"--until-phase: {until!r} is not one of {', '.join(phases)}")
    policy_text = get("destructive", _SELECTION.destructive.value)
    try:
        policy = DestructivePolicy(policy_text)
    except ValueError:
        raise UsageError(
            f"--destructive: {policy_text!r} is not one of "
            f"{', '.join(p.value for p in DestructivePolicy)}"
        ) from None
    # an empty name (`--stop-before "$KEY"` with KEY unset) would name nothing and stop nothing.
    for option, values in (
        ("--target", get("target") or []),
        ("--stop-before", get("stop_before") or []),
        ("--approve", get("approve") or []),
        ("--allow-drift", get("allow_drift") or []),
    ):
        if any(v is not None and not v.strip() for v in values):
            raise UsageError(f"{option}: empty; give a migration name or step key")
    digest = get("expect_digest")
    if digest is not None and not (digest.startswith("sha256:") and len(digest) == 71):
        raise UsageError(f"--expect-digest: {digest!r} is not sha256:<64 hex digits>")
    selection = Selection(
        target=_one_name(get("target"), "--target"),
        until_phase=until,
        stop_before=_one_name(get("stop_before"), "--stop-before"),
        expect_digest=digest,
        approve=frozenset(get("approve") or ()),
        destructive=policy,
        rewrite=not get("no_rewrite", False),
    )
    allow = Allow(
        out_of_order=get("allow_out_of_order", False),
        drift="*" in (get("allow_drift") or ()),
        drift_only=frozenset(v for v in get("allow_drift") or () if v != "*"),
        unknown=get("allow_unknown", False),
        resume_edited=get("resume_edited", False),
    )
    return RunSettings(
        tracking=tracking, timeouts=timeouts, backfill=backfill, allow=allow, selection=selection,
        lint_rules=_enabled_rules(get("enable_rule") or []),
    )


# --- output --------------------------------------------------------------------------------


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def render_text(summary: Summary) -> str:
    d = summary.as_dict()
    out: list[str] = []
    if d.get("migrations"):
        out.append(
            _table(
                [
                    [m["name"], m["state"] + (" (out of order)" if m.get("outOfOrder") else "")]
                    for m in d["migrations"]
                ],
                ["MIGRATION", "STATE"],
            )
        )
    if d.get("steps"):
        out.append("")
        out.append(
            _table(
                [
                    [
                        s["key"],
                        s["migration"],
                        s["phase"],
                        s["tx"],
                        "yes" if s["destructive"] else "",
                        s["summary"][:60],
                    ]
                    for s in d["steps"]
                ],
                ["STEP", "MIGRATION", "PHASE", "TX", "DESTRUCTIVE", "SUMMARY"],
            )
        )
    if d.get("findingList"):
        out.append("")
        for f in d["findingList"]:
            out.append(f"{f['path']}:{f['line']}: {f['severity']}[{f['rule']}] {f['message']}")
    if d["applied"]:
        out.append(
            _table(
                [
                    [m["migration"], s[0], s[1], f"{s[2]} ms"]
                    for m in d["applied"]
                    for s in m["steps"]
                ],
                ["APPLIED", "STEP", "PHASE", "TIME"],
            )
        )
    if "backup" in d:
        b = d["backup"]
        out.append(
            f"backup {b['file']}: {b['size']} bytes, sha256 {b['sha256']}, scope {b['scope']}"
        )
        if b.get("skipped"):
            out.append(
                f"skipped (not in the database yet, nothing to back up): {', '.join(b['skipped'])}"
                + ("" if b.get("tables") else "; the dump holds no table")
            )
    if "restore" in d:
        r = d["restore"]
        out.append(f"restored {r['file']} into {r['database']}")
        if r.get("backupTime"):
            out.append(
                f"the database is as of {r['backupTime']} (writes since then are lost); "
                f"tracking rows of {r.get('trackingTable') or '(none saved)'} rewritten"
            )
        if r.get("pendingAgain"):
            out.append(
                "pending again (they re-apply on the next apply unless edited or removed): "
                + ", ".join(r["pendingAgain"])
            )
    if "verify" in d:
        out.extend(_verify_text(d["verify"]))
    if "rollback" in d:
        r = d["rollback"]
        if d["command"] == "rollback":
            out.append(
                f"rolled back to {r['to']}: undone {', '.join(r['undone']) or 'nothing'}"
                + (f"; still to undo {', '.join(r['undo'])}" if r["undo"] else "")
            )
        else:
            out.append(
                f"--target {r['to']} is below what is applied: a rollback would undo "
                f"{', '.join(r['undo'])}"
                + (f" (no down file: {', '.join(r['missing'])})" if r["missing"] else "")
            )
    for p in d.get("problems") or []:
        out.append(f"problem[{p['code']}]: {p['message']}")
    if d["command"] in ("plan", "apply", "rollback", "status", "baseline", "mark-applied"):
        stopped = d.get("stopped") or {}
        why = f" ({stopped.get('why')})" if stopped.get("why") else ""
        out.append("")
        out.append(
            f"applied: {d['appliedCount']}  pending: {d['pendingCount']}  "
            f"last: {d['lastApplied'] or '-'}"
            + (f"  stopped: {stopped.get('reason')}{why}" if stopped else "")
        )
    if d["command"] == "lint":
        out.append(
            f"lint: {d['findings']['error']} error(s), {d['findings']['warning']} warning(s)"
        )
    return "\n".join(out).strip("\n")


def _verify_text(v: dict[str, Any]) -> list[str]:
    where = ", ".join(v["schemas"]) or "no schema"
    built = f"migrations up to {v['expectedUpTo']}" if v["expectedUpTo"] else "no migration"
    scope = f", objects after {v['baselineUpTo']} only" if v.get("baselineUpTo") else ""
    ignored = f", {v['ignored']} ignored" if v["ignored"] else ""
    about = f"{v['compared']} objects in {where}; expected: {built}{scope}{ignored}"
    out = [f"dropped a scratch database left by a killed run: {n}" for n in v["cleaned"]]
    if v["pending"]:
        out.append(
            f"production has {v['pending']} pending migration(s): not in the expected schema"
        )
    if v.get("snapshot"):
        about += f"; drizzle-kit's {v['snapshot']} compared too"
    if v["inSync"]:
        return [*out, f"schema in sync ({about})"]
    drift = [*v["drift"], *v.get("snapshotDrift", [])]
    return [*out, f"schema drift: {len(drift)} difference(s) ({about})",
            *(f"  {d['message']}" for d in drift)]


def _emit_factory() -> Any:
    log = get_logger()

    def emit(event: str, **fields: Any) -> None:
        log.info(event, **fields)

    return emit


def _write_result(path: str | None, data: dict[str, Any]) -> None:
    if not path:
        return
    try:
        Path(path).write_text(bounded_json(data) + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"error[Usage]: --result-file {path}: cannot write ({exc.strerror})", file=sys.stderr)


def check_result_file(path: str | None) -> None:
    """Refuse a `--result-file` that cannot be written before anything runs: found only at the
    end, the run's outcome would be lost (a Job's termination message) after it was applied.
    An existing file is opened for appending (not changed); a new one needs a writable folder."""
    if not path:
        return
    target = Path(path)
    try:
        if target.exists() or target.is_symlink():
            if target.is_dir():
                raise UsageError(f"--result-file {path}: is a folder")
            with target.open("a", encoding="utf-8"):
                pass
            return
    except OSError as exc:
        raise UsageError(f"--result-file {path}: cannot write ({exc.strerror})") from None
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(f"--result-file {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--result-file {path}: cannot write in folder {folder}")


def _operator(args: list[str]) -> int:
    try:
        module = importlib.import_module("pgshift.controller.run")
    except ImportError as exc:
        raise UsageError(
            f"pgshift operator: the controller is not available in this build ({exc})"
        ) from None
    entry = getattr(module, "main", None) or getattr(module, "run", None)
    if entry is None:
        raise UsageError("pgshift operator: pgshift.controller.run has no main()")
    result = entry(args)
    return int(result or 0)


def dispatch(args: argparse.Namespace, emit: Any) -> Summary:
    # imported here, not at the top: the driver and the planner take a good second to import
    # on a busy node, and a SIGTERM meanwhile must already find the handler (see the module).
    from pgshift import commands

    cmd = args.command
    url = getattr(args, "database_url", None) or os.environ.get("DATABASE_URL")
    if cmd in ("backup", "restore"):
        tracking = settings_from(args).tracking
        given = (
            commands.SourceOptions(dir=args.dir, layout=args.layout, overrides=args.overrides)
            if args.dir
            else None
        )
        lock_wait = parse_duration(args.lock_wait, "--lock-wait")
        if cmd == "backup":
            keep = _int(args.keep, "--keep", 1) if args.keep is not None else None
            return commands.backup(
                url,
                args.to,
                tables=args.tables,
                keep=keep,
                lock_wait=lock_wait,
                emit=emit,
                tracking=tracking,
                src=given,
            )
        return commands.restore(
            url,
            args.from_,
            clean=args.clean,
            emit=emit,
            src=given,
            restore_id=args.restore_id,
            lock_wait=lock_wait,
        )
    settings = settings_from(args)
    src = commands.SourceOptions(dir=args.dir, layout=args.layout, overrides=args.overrides)
    if cmd == "plan":
        return commands.plan(src, url, settings, args.rollback_to)
    if cmd == "apply":
        return commands.apply(src, url, settings, emit)
    if cmd == "rollback":
        if settings.selection.target is not None:
            raise UsageError("--target: rollback goes back to --to NAME; --target is apply's")
        keep = _int(args.keep, "--keep", 1) if args.keep is not None else None
        return commands.rollback(
            src, url, settings, args.to, backup_dir=args.backup_dir, keep=keep, emit=emit
        )
    if cmd == "status":
        return commands.status(src, url, settings)
    if cmd == "lint":
        return commands.lint(src, settings, server_version_of(args.server_version))
    if cmd == "baseline":
        return commands.baseline(src, url, settings, args.up_to, emit)
    if cmd == "mark-applied":
        return commands.mark_applied(src, url, settings, args.name, emit)
    if cmd == "verify":
        if args.baseline is not None and not args.baseline.strip():
            raise UsageError("--baseline: empty; give the migration name baseline --up-to took")
        choices = commands.VerifyChoices(
            scratch_url=args.scratch_url or os.environ.get("SCRATCH_DATABASE_URL"),
            ignore=tuple(args.ignore),
            baseline=args.baseline,
            allow_external=args.allow_external,
        )
        return commands.verify(src, url, settings, choices, emit)
    raise UsageError(f"unknown command {cmd}")


def server_version_of(value: str | None) -> int | None:
    """`--server-version 16` (or 16.4): a supported major, else a one-line usage error."""
    from pgshift.safety.versions import SUPPORTED_MAJORS

    if value is None:
        return None
    major = value.split(".", 1)[0].strip()
    if not major.isdigit() or int(major) not in SUPPORTED_MAJORS:
        raise UsageError(
            f"--server-version {value!r}: not a supported PostgreSQL major "
            f"({SUPPORTED_MAJORS[0]} to {SUPPORTED_MAJORS[-1]})"
        )
    return int(major)


def _print_result(data: dict[str, Any], output: str) -> None:
    if output == "json":
        # values redacted, never the serialised text: the line stays valid JSON.
        print(json.dumps({"event": "result", **redact_values(data)}, default=str), flush=True)


def _interrupted(message: str) -> Failure:
    return Failure(
        migration=None,
        step=None,
        statement=None,
        line=None,
        sqlstate=None,
        message=message,
        hint=Interrupted.hint,
        retryable=True,
        code=Interrupted.code,
    )


def _interrupted_summary(command: str, summary: Summary | None) -> Summary:
    """The summary of a run that a SIGTERM ended: the run's own (what it applied, from the
    tracking table) when it got that far, marked Interrupted unless it had already failed."""
    if summary is None:
        why = "before any step ran" if command == "apply" else "before it finished"
        summary = Summary(command=command, ok=False, exit_code=Interrupted.exit_code)
        summary.failure = _interrupted(f"pgshift {command}: interrupted (SIGTERM) {why}")
        summary.stopped = Stopped(StopReason.INTERRUPTED)
    elif summary.failure is None:
        summary.ok = False
        summary.exit_code = Interrupted.exit_code
        summary.stopped = replace(
            summary.stopped or Stopped(StopReason.INTERRUPTED), reason=StopReason.INTERRUPTED
        )
        summary.failure = _interrupted(
            f"pgshift {command}: interrupted (SIGTERM) after its last step"
        )
    return summary


def main(argv: list[str] | None = None) -> int:
    """The console script (`argv` None: `sys.argv`). The signal handler stays installed after
    return (held: a signal then is only counted), so a SIGTERM during the interpreter's exit
    changes no exit code. After a SIGTERM the console script exits at once, once its output
    is flushed: the interpreter's own teardown of the driver and the planner takes a second
    or more on a busy node, and the connection is closed, the result file written already."""
    code = _main(sys.argv[1:] if argv is None else argv)
    if argv is None:
        # the interpreter's teardown puts SIG_DFL back for Python-level handlers: a SIGTERM
        # then would end the process with -15 instead of this code. Ignored signals stay so.
        signals.ignore_from_now()
    if argv is None and signals.requested():
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to save
                stream.flush()
        os._exit(code)
    return code


def _main(argv: list[str]) -> int:
    if argv[:1] == ["operator"]:
        # every later argument, --help included, belongs to the controller's own parser; kopf
        # handles its signals itself.
        try:
            return _operator(argv[1:])
        except PgshiftError as exc:
            print(redact(exc.one_line()), file=sys.stderr)
            return exc.exit_code
    args: argparse.Namespace | None = None
    summary: Summary | None = None
    writable = False  # --result-file checked: an unwritable one is reported once, not twice
    try:
        signals.install()  # inside the try: a signal may come as soon as it is in place
        args = build_parser().parse_args(argv)
        configure("json" if getattr(args, "output", "text") == "json" else "text")
        check_result_file(getattr(args, "result_file", None))
        writable = True
        summary = dispatch(args, _emit_factory())
    except KeyboardInterrupt:
        pass  # reported below, with whatever the run got to
    except PgshiftError as exc:
        signals.hold()
        assert args is not None  # parse_args raises SystemExit, not PgshiftError
        # the tracking table was not read: counts unknown (absent), not 0
        data = RunSummary(
            command=args.command,
            ok=False,
            stopped=Stopped(StopReason.FAILED),
            counts=None,
            failure=RunFailure.from_dict(exc.as_dict()),
        ).as_dict()
        if writable:
            _write_result(getattr(args, "result_file", None), data)
        _print_result(data, getattr(args, "output", "text"))
        print(redact(exc.one_line()), file=sys.stderr)
        return exc.exit_code
    signals.hold()
    if args is None:  # the signal came while the flags were read: read them again, for the file
        args = build_parser().parse_args(argv)
    ran = summary is not None
    if signals.requested() or summary is None:
        summary = _interrupted_summary(args.command, summary)
    data = summary.as_dict() if ran else replace(summary.contract(), counts=None).as_dict()
    _write_result(getattr(args, "result_file", None), data)
    output = getattr(args, "output", "text")
    if output == "json":
        _print_result(data, output)
    else:
        text = render_text(summary)
        if text:
            print(redact(text), flush=True)
    if summary.failure is not None:
        print(summary.failure.one_line(), file=sys.stderr)
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
