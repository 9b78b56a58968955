"""`pgshift`: argparse over `commands`. Parses flags, prints results, maps errors to exit codes.

Only `PgshiftError` is caught: it becomes one line `error[<Code>]: <message>` on stderr and its
exit code. Anything else is a bug and keeps its traceback. Every line printed is redacted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from pgshift import commands
from pgshift.engine.result import Summary, bounded_json
from pgshift.engine.signals import sigterm_cancels
from pgshift.errors import EXIT_BAD_INPUT, Interrupted, PgshiftError, UsageError
from pgshift.logs import configure, get_logger, password_of, redact, register_secret
from pgshift.settings import (
    Allow,
    BackfillSettings,
    DestructivePolicy,
    RunSettings,
    Selection,
    Timeouts,
    Tracking,
    parse_duration,
)

PHASES = ("expand", "backfill", "contract")


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are our one line (exit 2) naming the option."""

    def error(self, message: str) -> NoReturn:
        print(redact(f"error[Usage]: {self.prog}: {message}"), file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def _common(p: argparse.ArgumentParser, *, database: bool = True, source: bool = True) -> None:
    if source:
        p.add_argument("--dir", default=".", help="migrations folder (default: .)")
        p.add_argument("--layout", default="auto", help="auto|drizzle|drizzle-v1|plain")
        p.add_argument("--overrides", help="YAML/JSON file: migration name -> directives")
    if database:
        p.add_argument("--database-url", help="postgresql:// URL (default: env DATABASE_URL)")
        p.add_argument("--tracking-schema", default="drizzle")
        p.add_argument("--tracking-table", default="__drizzle_migrations")
    p.add_argument("--output", default="text", help="text|json")
    p.add_argument("--result-file", help="write the bounded (<= 4 KiB) JSON summary here")


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", help="stop after this migration")
    p.add_argument("--until-phase", help="expand|backfill|contract: stop at the first later step")
    p.add_argument("--stop-before", help="stop before this step key")
    p.add_argument("--expect-digest", help="refuse a source whose digest differs (sha256:...)")
    p.add_argument("--allow-out-of-order", action="store_true")
    p.add_argument("--allow-drift", action="store_true")
    p.add_argument("--allow-unknown", action="store_true")
    p.add_argument("--no-rewrite", action="store_true", help="run statements exactly as written")
    p.add_argument("--lock-wait", default="5m", help="wait for the migration lock (default 5m)")
    p.add_argument(
        "--lock-timeout", default="2s", help="lock_timeout for strong locks (default 2s)"
    )
    p.add_argument("--lock-retries", default="5", help="retries after 55P03/40P01 (default 5)")
    p.add_argument("--statement-timeout", default="0", help="statement_timeout (default 0: none)")
    p.add_argument(
        "--target-batch-time", default="200ms", help="backfill batch time (default 200ms)"
    )
    p.add_argument("--batch-pause", default="0s", help="pause between backfill batches")
    p.add_argument(
        "--approve", action="append", default=[], help="step key or migration (repeatable)"
    )
    p.add_argument("--destructive", default="Allow", help="Allow|RequireApproval|Deny")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pgshift", description="Ship PostgreSQL schema migrations safely.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("plan", help="applied / pending / drifted, and the pending steps")
    _common(p)
    _run_flags(p)
    p = sub.add_parser("apply", help="run pending steps under the migration lock")
    _common(p)
    _run_flags(p)
    p = sub.add_parser("status", help="what the database holds (db:check)")
    _common(p)
    p = sub.add_parser("lint", help="lint findings (no database)")
    _common(p, database=False)
    p.add_argument("--no-rewrite", action="store_true")
    p.add_argument(
        "--server-version",
        metavar="MAJOR",
        help="refuse syntax this PostgreSQL major (13-18) lacks, as plan/apply do on a server",
    )
    p = sub.add_parser("baseline", help="mark every migration up to NAME applied, without running")
    _common(p)
    p.add_argument("--up-to", required=True, metavar="NAME")
    p.add_argument("--lock-wait", default="5m")
    p.add_argument("--expect-digest")
    p = sub.add_parser("mark-applied", help="mark one migration applied, without running it")
    _common(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--lock-wait", default="5m")
    p.add_argument("--expect-digest")
    p = sub.add_parser("backup", help="pg_dump (custom format), checksum, verify")
    _common(p, source=False)
    p.add_argument("--to", required=True, metavar="FILE")
    p.add_argument("--tables", nargs="+", default=[], metavar="TABLE")
    p.add_argument("--keep", metavar="N", help="keep the N newest *.dump files in the folder")
    p.add_argument("--lock-wait", default="60s", help="pg_dump --lock-wait-timeout (default 60s)")
    p = sub.add_parser("restore", help="pg_restore into an empty database (or --clean)")
    _common(p, source=False)
    p.add_argument("--from", dest="from_", required=True, metavar="FILE")
    p.add_argument("--clean", action="store_true")
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


def settings_from(args: argparse.Namespace) -> RunSettings:
    get = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    output = get("output")
    if output not in ("text", "json"):
        raise UsageError(f"--output: {output!r} is not one of text, json")
    tracking = Tracking(
        schema=get("tracking_schema", "drizzle"),
        table=get("tracking_table", "__drizzle_migrations"),
    )
    for option, value in (
        ("--tracking-schema", tracking.schema),
        ("--tracking-table", tracking.table),
    ):
        if not value or len(value.encode()) > 63:
            raise UsageError(f"{option}: {value!r} must be 1 to 63 bytes")
    timeouts = Timeouts(
        lock_wait=parse_duration(get("lock_wait", "5m"), "--lock-wait"),
        lock_timeout=parse_duration(get("lock_timeout", "2s"), "--lock-timeout"),
        statement_timeout=parse_duration(get("statement_timeout", "0"), "--statement-timeout"),
        lock_retries=_int(get("lock_retries", "5"), "--lock-retries"),
    )
    backfill = BackfillSettings(
        target_batch_time=parse_duration(get("target_batch_time", "200ms"), "--target-batch-time"),
        batch_pause=parse_duration(get("batch_pause", "0s"), "--batch-pause"),
    )
    if backfill.target_batch_time <= 0:
        raise UsageError("--target-batch-time: must be more than 0")
    until = get("until_phase")
    if until is not None and until not in PHASES:
        raise UsageError(f"--until-phase: {until!r} is not one of {', '.join(PHASES)}")
    policy_text = get("destructive", "Allow")
    try:
        policy = DestructivePolicy(policy_text)
    except ValueError:
        raise UsageError(
            f"--destructive: {policy_text!r} is not one of "
            f"{', '.join(p.value for p in DestructivePolicy)}"
        ) from None
    digest = get("expect_digest")
    if digest is not None and not (digest.startswith("sha256:") and len(digest) == 71):
        raise UsageError(f"--expect-digest: {digest!r} is not sha256:<64 hex digits>")
    selection = Selection(
        target=get("target"),
        until_phase=until,
        stop_before=get("stop_before"),
        expect_digest=digest,
        approve=frozenset(get("approve") or ()),
        destructive=policy,
        rewrite=not get("no_rewrite", False),
    )
    allow = Allow(
        out_of_order=get("allow_out_of_order", False),
        drift=get("allow_drift", False),
        unknown=get("allow_unknown", False),
    )
    return RunSettings(
        tracking=tracking, timeouts=timeouts, backfill=backfill, allow=allow, selection=selection
    )


# --- output --------------------------------------------------------------------------------


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
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
    if "restore" in d:
        out.append(f"restored {d['restore']['file']} into {d['restore']['database']}")
    for p in d.get("problems") or []:
        out.append(f"problem[{p['code']}]: {p['message']}")
    if d["command"] in ("plan", "apply", "status", "baseline", "mark-applied"):
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
    cmd = args.command
    url = getattr(args, "database_url", None) or os.environ.get("DATABASE_URL")
    if cmd in ("backup", "restore"):
        if cmd == "backup":
            keep = _int(args.keep, "--keep", 1) if args.keep is not None else None
            return commands.backup(
                url,
                args.to,
                tables=args.tables,
                keep=keep,
                lock_wait=parse_duration(args.lock_wait, "--lock-wait"),
                emit=emit,
            )
        return commands.restore(url, args.from_, clean=args.clean, emit=emit)
    settings = settings_from(args)
    src = commands.SourceOptions(dir=args.dir, layout=args.layout, overrides=args.overrides)
    if cmd == "plan":
        return commands.plan(src, url, settings)
    if cmd == "apply":
        return commands.apply(src, url, settings, emit)
    if cmd == "status":
        return commands.status(src, url, settings)
    if cmd == "lint":
        return commands.lint(src, settings, server_version_of(args.server_version))
    if cmd == "baseline":
        return commands.baseline(src, url, settings, args.up_to, emit)
    if cmd == "mark-applied":
        return commands.mark_applied(src, url, settings, args.name, emit)
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["operator"]:
        # every later argument, --help included, belongs to the controller's own parser.
        try:
            return _operator(argv[1:])
        except PgshiftError as exc:
            print(redact(exc.one_line()), file=sys.stderr)
            return exc.exit_code
    parser = build_parser()
    args = parser.parse_args(argv)
    output = getattr(args, "output", "text")
    # redact the URL's password from every line before anything can print it.
    url = getattr(args, "database_url", None) or os.environ.get("DATABASE_URL")
    register_secret(password_of(url))
    configure("json" if output == "json" else "text")
    emit = _emit_factory()
    result_file = getattr(args, "result_file", None)
    try:
        # SIGTERM anywhere (waiting for the lock, planning, pg_dump) ends as cleanly as Ctrl-C;
        # inside a run the runner turns it into a summary with reason Interrupted.
        with sigterm_cancels():
            summary = dispatch(args, emit)
    except KeyboardInterrupt:
        exc = Interrupted(f"pgshift {args.command}: interrupted before any step ran")
        data = Summary(command=args.command, ok=False).as_dict()
        data["failure"] = {**exc.as_dict(), "retryable": True}
        data["stopped"] = {"reason": "Interrupted"}
        _write_result(result_file, data)
        if output == "json":
            print(redact(json.dumps({"event": "result", **data}, default=str)), flush=True)
        print(redact(exc.one_line()), file=sys.stderr)
        return exc.exit_code
    except PgshiftError as exc:
        data = Summary(command=args.command, ok=False).as_dict()
        data["failure"] = {**exc.as_dict(), "retryable": exc.code in ("LockNotAcquired",)}
        data["stopped"] = {"reason": "Failed"}
        _write_result(result_file, data)
        if output == "json":
            print(redact(json.dumps({"event": "result", **data}, default=str)), flush=True)
        print(redact(exc.one_line()), file=sys.stderr)
        return exc.exit_code
    data = summary.as_dict()
    _write_result(result_file, data)
    if output == "json":
        print(redact(json.dumps({"event": "result", **data}, default=str)), flush=True)
    else:
        text = render_text(summary)
        if text:
            print(redact(text), flush=True)
    if summary.failure is not None:
        print(summary.failure.one_line(), file=sys.stderr)
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
