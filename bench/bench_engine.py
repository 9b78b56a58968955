"""Benchmark: the engine's cost, pgshift against drizzle-orm's migrator side by side (issue 14).

    .venv/bin/python bench/bench_engine.py [--quick] [--rounds 9]
        [--fsync off|on] [--rows many500,many5000,big,bigbp,noop,kit031,kit025,mem]
        [--pgshift-tree OTHER-CHECKOUT/.venv/bin/pgshift]

Rows (each on fresh databases of one private PostgreSQL, the same drizzle-kit folder for both):

- many500 / many5000: 500 and 5,000 (--quick: 200 and 1,000) small migrations; the
  per-migration cost at 5,000 against that at 500 is printed (target within 1.2x). The server
  runs with max_locks_per_transaction=1024: on the default (64) drizzle's single transaction
  fails at 5,000 (53200);
- big / bigbp: one file of 20,000 statements (a seed: INSERTs into a table it creates) without
  breakpoints (drizzle sends it as one query), and the same with `--> statement-breakpoint`;
- noop: 5,000 migrations all applied, then each tool run again (a deploy with nothing to do);
- kit031 / kit025: a real-world-shaped history built here, 40 files with enums, tables, FKs
  and indexes per file as drizzle-kit writes them: 0.31 (plain CREATE, ALTER ... ADD CONSTRAINT)
  and < 0.26 (CREATE TABLE / INDEX IF NOT EXISTS, FKs and enums guarded in DO blocks), on a
  fresh database;
- mem: one 50 MB file (5 MB with --quick) of INSERTs with breakpoints: time, and pgshift's
  peak RSS minus its RSS after imports, against the file's size (target <= 3x).

Each figure is the median of the rounds (tools alternate inside each round), with min-max:
"inside" is the time after the tool's modules are loaded (drizzle: migrate.mjs's timer;
pgshift: `pgshift.cli.main()` timed in-process), "process" the whole process, wall clock.
Before a round it waits (up to --load-timeout s) for the 1-minute load to fall below 3 and
prints the load; when it could not, the row says so. fsync is off, as in the other benches;
`--fsync on` runs the server with durable commits. `--pgshift-tree PATH`: run the pgshift of
another checkout (its console script, e.g. OTHER-CHECKOUT/.venv/bin/pgshift for "before").
Flyway and Atlas are not driven here (they need a JVM and a Go build).
This is a benchmark, not a test: it asserts only that both tools applied every migration.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python bench/x.py): the repository root holds `tests`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_many_migrations import generate
from tests.interop.drizzle import (
    NODE_DIR,
    Spec,
    pgshift_argv,
    require_node_modules,
    tracking_rows,
    write_folder,
)
from tests.pgserver import PgServer, running_server

#: pgshift's CLI in-process: import and main() times, and RSS after imports and at its peak.
DRIVER = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from pgshift.cli import main
t1 = time.perf_counter()
def rss_kb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * (resource.getpagesize() // 1024)
after_imports = rss_kb()
sys.argv = ["pgshift", *sys.argv[1:]]
code = 0
try:
    code = main() or 0
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
t2 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("BENCH " + json.dumps({"code": code, "importMs": (t1 - t0) * 1e3,
                             "insideMs": (t2 - t1) * 1e3, "rssAfterImportsKb": after_imports,
                             "peakRssKb": peak}), file=sys.stderr)
"""

ROW_NAMES = ("many500", "many5000", "big", "bigbp", "noop", "kit031", "kit025", "mem")


def wall(argv: Sequence[str], env: dict[str, str]) -> tuple[float, str, str, int]:
    t0 = time.perf_counter()
    out = subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=3600)
    return (time.perf_counter() - t0) * 1e3, out.stdout, out.stderr, out.returncode


def script_python(script: str) -> str:
    """The interpreter a console script runs with (its shebang)."""
    first = Path(script).read_text().splitlines()[0]
    return first[2:].strip() if first.startswith("#!") else sys.executable


def run_drizzle(url: str, folder: Path) -> dict[str, float]:
    env = {**os.environ, "DATABASE_URL": url}
    total, stdout, stderr, code = wall(
        ["node", str(NODE_DIR / "migrate.mjs"), "--dir", str(folder), "--line", "stable"], env)
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    report = json.loads(lines[-1]) if lines else {}
    if code != 0 or not report.get("ok"):
        raise SystemExit(f"drizzle failed: {report or stderr[-2000:]}")
    return {"insideMs": report["insideMs"], "totalMs": total}


def run_pgshift(python: str, url: str, folder: Path) -> dict[str, float]:
    env = {**os.environ, "DATABASE_URL": url}
    total, stdout, stderr, code = wall(
        [python, "-c", DRIVER, "apply", "--dir", str(folder), "--output", "json"], env)
    found = [ln for ln in stderr.splitlines() if ln.startswith("BENCH ")]
    report: dict[str, Any] = json.loads(found[-1][6:]) if found else {}
    if code != 0 or report.get("code") != 0:
        raise SystemExit(f"pgshift failed (exit {code}):\n{stdout[-2000:]}\n{stderr[-2000:]}")
    return {"insideMs": report["insideMs"], "totalMs": total,
            "rssAfterImportsKb": report["rssAfterImportsKb"], "peakRssKb": report["peakRssKb"]}


# --- folders -----------------------------------------------------------------------------------


def seed_file(statements: int, breakpoints: bool, pad: int = 0) -> str:
    """A table and `statements - 1` INSERTs into it (`pad`: characters of filler per row)."""
    sep = ";--> statement-breakpoint\n" if breakpoints else ";\n"
    filler = "x" * pad
    parts = ['CREATE TABLE "seed" ("id" integer PRIMARY KEY, "name" text NOT NULL)']
    parts += [f"INSERT INTO \"seed\" (\"id\", \"name\") VALUES ({i}, 'row {i} {filler}')"
              for i in range(1, statements)]
    return sep.join(parts) + ";\n"


def mem_file(size: int) -> str:
    """INSERTs with breakpoints, about `size` bytes."""
    per = 200
    n = max(2, size // (per + 80))
    return seed_file(n, True, pad=per)


def kit_history(files: int, old: bool) -> list[Spec]:
    """A real-world-shaped drizzle-kit history: each file 2 enums, 4 tables, 6 FKs (to tables of
    this file and of earlier ones), 6 indexes, as drizzle-kit 0.31 writes them, or (`old`)
    as drizzle-kit < 0.26 did (IF NOT EXISTS, FKs and enums guarded in DO blocks)."""
    bp = "--> statement-breakpoint\n"
    specs: list[Spec] = []
    for f in range(files):
        parts: list[str] = []
        for e in range(2):
            enum = f'CREATE TYPE "public"."e{f}_{e}" AS ENUM(\'a\', \'b\', \'c\');'
            parts.append(f"DO $$ BEGIN\n {enum}\nEXCEPTION\n WHEN duplicate_object THEN null;"
                         "\nEND $$;\n" if old else enum + "\n")
        tables = [f"t{f}_{k}" for k in range(4)]
        create = "CREATE TABLE IF NOT EXISTS" if old else "CREATE TABLE"
        for k, t in enumerate(tables):
            parts.append(
                f'{create} "{t}" (\n\t"id" serial PRIMARY KEY NOT NULL,\n'
                f'\t"name" text NOT NULL,\n\t"kind" "e{f}_{k % 2}" DEFAULT \'a\' NOT NULL,\n'
                f'\t"parent_id" integer,\n\t"owner_id" integer,\n'
                f'\t"created_at" timestamp DEFAULT now() NOT NULL\n);\n')
        refs = [(tables[1], "parent_id", tables[0]), (tables[2], "parent_id", tables[1]),
                (tables[3], "parent_id", tables[2]), (tables[0], "parent_id", tables[3])]
        if f > 0:  # FKs to the tables of an earlier file, as later features do
            refs += [(tables[0], "owner_id", f"t{f - 1}_0"), (tables[1], "owner_id", "t0_0")]
        for t, col, other in refs:
            fk = (f'ALTER TABLE "{t}" ADD CONSTRAINT "{t}_{col}_{other}_id_fk" FOREIGN KEY '
                  f'("{col}") REFERENCES "public"."{other}"("id") ON DELETE no action '
                  "ON UPDATE no action;")
            parts.append(f"DO $$ BEGIN\n {fk}\nEXCEPTION\n WHEN duplicate_object THEN null;\n"
                         "END $$;\n" if old else fk)
        index = "CREATE INDEX IF NOT EXISTS" if old else "CREATE INDEX"
        for t in tables:
            parts.append(f'{index} "{t}_name_idx" ON "{t}" USING btree ("name");')
        for t in tables[:2]:
            parts.append(f'{index} "{t}_created_idx" ON "{t}" USING btree ("created_at");')
        specs.append(Spec(f"feature_{f}", bp.join(parts)))
    return specs


# --- rounds ------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    what: str
    count: int
    results: dict[str, list[dict[str, float]]] = field(
        default_factory=lambda: {"drizzle": [], "pgshift": []})
    loads: list[float] = field(default_factory=list)
    busy_rounds: int = 0
    note: str = ""


def wait_for_load(limit: float, timeout: float) -> tuple[float, bool]:
    deadline = time.monotonic() + timeout
    while True:
        load = os.getloadavg()[0]
        if load < limit:
            return load, True
        if time.monotonic() > deadline:
            return load, False
        time.sleep(5)


def fresh(server: PgServer, label: str) -> str:
    name = f"bench_{label}_{os.getpid()}_{time.monotonic_ns()}"
    server.create_database(name)
    return name


def measure(row: Row, server: PgServer, folder: Path, python: str, rounds: int,
            args: argparse.Namespace, prepare: Callable[[str], None] | None = None) -> None:
    """`rounds` alternating rounds; `prepare(url)`: bring a fresh database to the row's start
    (untimed; the noop row applies the folder first, with the same tool)."""
    for r in range(rounds):
        load, ok = wait_for_load(3.0, args.load_timeout)
        row.loads.append(load)
        if not ok:
            row.busy_rounds += 1
            print(f"  {row.name} round {r + 1}: load {load:.2f} still >= 3 after "
                  f"{args.load_timeout:.0f} s; measured anyway", flush=True)
        order = ["drizzle", "pgshift"] if r % 2 == 0 else ["pgshift", "drizzle"]
        for tool in order:
            db = fresh(server, tool)
            url = server.url(db)
            if prepare is not None:
                if tool == "drizzle":
                    run_drizzle(url, folder)
                else:
                    run_pgshift(python, url, folder)
            res = run_drizzle(url, folder) if tool == "drizzle" else run_pgshift(
                python, url, folder)
            rows = len(tracking_rows(url, "stable"))
            if rows != row.count:
                raise SystemExit(f"{row.name}: {tool} recorded {rows} of {row.count}")
            server.drop_database(db)
            row.results[tool].append(res)
            print(f"  {row.name} round {r + 1} {tool:8} inside {res['insideMs']:9.1f} ms  "
                  f"process {res['totalMs']:9.1f} ms  (load {load:.2f})", flush=True)


def med(values: list[float]) -> str:
    """Median (min-max), in seconds."""
    low, high = min(values) / 1e3, max(values) / 1e3
    return f"{statistics.median(values) / 1e3:.2f} s ({low:.2f}-{high:.2f})"


def report(rows: list[Row], args: argparse.Namespace, tree: str) -> None:
    print()
    print(f"pgshift: {tree}; fsync {args.fsync}; rounds {args.rounds}"
          f"{' (quick)' if args.quick else ''}")
    print("| work | drizzle inside | pgshift inside | ratio | drizzle process | pgshift process "
          "| ratio | load (1 min) |")
    print("|---|---|---|---|---|---|---|---|")
    out = {}
    for row in rows:
        d, p = row.results["drizzle"], row.results["pgshift"]
        ratios = {}
        cells = []
        for key in ("insideMs", "totalMs"):
            dv, pv = [x[key] for x in d], [x[key] for x in p]
            ratio = statistics.median(pv) / statistics.median(dv)
            ratios[key] = ratio
            cells += [med(dv), med(pv), f"{ratio:.2f}x"]
        load = f"{statistics.median(row.loads):.1f} ({min(row.loads):.1f}-{max(row.loads):.1f})"
        if row.busy_rounds:
            load += f", {row.busy_rounds} round(s) at load >= 3"
        print(f"| {row.what} | " + " | ".join(cells) + f" | {load} |")
        out[row.name] = {"ratioInside": round(ratios["insideMs"], 3),
                         "ratioProcess": round(ratios["totalMs"], 3)}
        if row.note:
            print(f"|   {row.note} |||||||")
    by = {r.name: r for r in rows}
    if "many500" in by and "many5000" in by:
        per = [statistics.median(x["insideMs"] for x in by[n].results["pgshift"]) / by[n].count
               for n in ("many500", "many5000")]
        print(f"pgshift per migration inside: {per[0]:.2f} ms at {by['many500'].count}, "
              f"{per[1]:.2f} ms at {by['many5000'].count} ({per[1] / per[0]:.2f}x)")
    print("BENCH " + json.dumps({"fsync": args.fsync, "quick": args.quick, "tree": tree,
                                 "rows": out}))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, smaller sizes")
    parser.add_argument("--rounds", type=int, help="rounds per row (default 9, quick 3)")
    parser.add_argument("--fsync", choices=["off", "on"], default="off")
    parser.add_argument("--rows", default=",".join(ROW_NAMES),
                        help=f"comma-separated, of: {', '.join(ROW_NAMES)}")
    parser.add_argument("--pgshift-tree", metavar="PATH",
                        help="another checkout's pgshift console script")
    parser.add_argument("--load-timeout", type=float, default=None,
                        help="seconds to wait for load < 3 before a round (default 120, quick 10)")
    args = parser.parse_args(argv)
    rows_wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows_wanted if r not in ROW_NAMES]
    if unknown:
        parser.error(f"--rows: unknown row(s) {', '.join(unknown)}; "
                     f"choose from {', '.join(ROW_NAMES)}")
    script = args.pgshift_tree or pgshift_argv()[0]
    if not Path(script).is_file():
        parser.error(f"--pgshift-tree: {script} is not a file (a checkout's .venv/bin/pgshift)")
    python = script_python(script)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 9
    if args.load_timeout is None:
        args.load_timeout = 10.0 if args.quick else 120.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    require_node_modules()
    many, big = (200, 1000) if args.quick else (500, 5000)
    mem_size = (5 if args.quick else 50) * 1024 * 1024
    big_n = 5000 if args.quick else 20000
    rows: list[Row] = []
    with (tempfile.TemporaryDirectory(prefix="pgshift-bench-") as tmp,
          running_server(fsync=args.fsync == "on",
                         settings=("max_locks_per_transaction=1024",)) as server):
        root = Path(tmp)
        print(f"PostgreSQL on 127.0.0.1:{server.port}, fsync {args.fsync}, pgshift {script}",
              flush=True)

        def folder_of(name: str, specs: list[Spec]) -> Path:
            folder = root / name
            write_folder(folder, specs, "stable")
            return folder

        plans: list[tuple[str, str, list[Spec], bool]] = []
        for name in rows_wanted:
            if name == "many500":
                plans.append((name, f"{many} small migrations", generate(many), False))
            elif name == "many5000":
                plans.append((name, f"{big} small migrations", generate(big), False))
            elif name == "big":
                plans.append((name, f"one file of {big_n} statements, no breakpoints",
                              [Spec("seed", seed_file(big_n, False))], False))
            elif name == "bigbp":
                plans.append((name, "the same with breakpoints",
                              [Spec("seed", seed_file(big_n, True))], False))
            elif name == "noop":
                plans.append((name, f"{big} migrations all applied (no-op deploy)",
                              generate(big), True))
            elif name == "kit031":
                plans.append((name, "real-world-shaped history, drizzle-kit 0.31 (40 files)",
                              kit_history(40, old=False), False))
            elif name == "kit025":
                plans.append((name, "real-world-shaped history, drizzle-kit < 0.26 (40 files)",
                              kit_history(40, old=True), False))
            elif name == "mem":
                text = mem_file(mem_size)
                plans.append((name, f"one {len(text) / 2**20:.0f} MB file (breakpoints)",
                              [Spec("big", text)], False))
        for name, what, specs, noop in plans:
            folder = folder_of(name, specs)
            row = Row(name, what, len(specs))
            prepare = (lambda _url: None) if noop else None
            measure(row, server, folder, python, args.rounds, args, prepare)
            if name == "mem":
                size = sum(f.stat().st_size for f in folder.glob("*.sql"))
                growth = [(x["peakRssKb"] - x["rssAfterImportsKb"]) * 1024
                          for x in row.results["pgshift"]]
                row.note = (f"pgshift peak RSS minus RSS after imports: "
                            f"{statistics.median(growth) / 2**20:.0f} MB = "
                            f"{statistics.median(growth) / size:.2f}x the file's size")
            rows.append(row)
    report(rows, args, script)


if __name__ == "__main__":
    main()
