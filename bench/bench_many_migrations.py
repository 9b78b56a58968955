"""Benchmark: 500 small migrations applied by pgshift and by drizzle-orm's migrator (issue 2).

    python bench/bench_many_migrations.py [--migrations 500] [--rounds 3] [--line stable|v1]
                                          [--profile bench/results/many.txt]
                                          [--pgshift-arg=--no-rewrite]

Each round applies the same generated drizzle-kit folder to two fresh databases on one private
PostgreSQL: one with `pgshift apply`, one with drizzle-orm's own `migrate()` (tools/node/
migrate.mjs: drizzle-orm 0.45 + node-postgres for the stable layout, 1.0 rc for v1). The order
alternates between rounds. Reported, as medians over the rounds:

- start-up: the interpreter alone (`node -e 0`, `python -c pass`), and loading each tool's
  modules (measured inside the process);
- inside: what each tool spends after its modules are loaded: connecting, reading the folder,
  planning and applying. drizzle's figure comes from migrate.mjs's own timer; pgshift's from a
  small driver that times `pgshift.cli.main()` in-process. This is the ratio the target is on
  (pgshift <= 1.2 x drizzle), despite pgshift's per-migration transactions, lock and checks;
- the whole process, wall clock, for reference.

Medians over the rounds, and the best round of each tool (on a busy machine the best round is
the better estimate of what each tool costs). `--pgshift-arg=--no-rewrite` shows what the safe
rewrites cost. pgshift plans each file on its own, so a `CREATE INDEX` or `FOREIGN KEY` on a
table an earlier file created is planned as a rewrite (CONCURRENTLY, NOT VALID + VALIDATE); at
run time, a file on tables that earlier files of the same run created runs as written in one
transaction instead (engine/apply.py), as drizzle runs it.

`--profile FILE` also runs pgshift once under pyinstrument and writes the text report there.
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python bench/x.py): the repository root holds `tests`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.interop.drizzle import (
    NODE_DIR,
    Line,
    Spec,
    pgshift_argv,
    require_node_modules,
    tracking_rows,
    write_folder,
)
from tests.pgserver import PgServer, running_server

#: Runs pgshift's CLI in-process and reports how long the import and `main()` took.
DRIVER = r"""
import json, sys, time
t0 = time.perf_counter()
from pgshift.cli import main
t1 = time.perf_counter()
sys.argv = ["pgshift", *sys.argv[1:]]
profile = __import__("os").environ.get("BENCH_PROFILE")
profiler = None
if profile:
    from pyinstrument import Profiler
    profiler = Profiler(interval=0.0005)
    profiler.start()
code = 0
try:
    code = main() or 0
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
t2 = time.perf_counter()
if profiler is not None:
    profiler.stop()
    with open(profile, "w") as fh:
        fh.write(profiler.output_text(unicode=True, color=False, show_all=False))
print("BENCH " + json.dumps({"code": code, "importMs": (t1 - t0) * 1e3,
                             "insideMs": (t2 - t1) * 1e3}), file=sys.stderr)
"""


def generate(n: int) -> list[Spec]:
    """n small migrations of the kinds drizzle-kit writes, in groups of four per table."""
    specs: list[Spec] = []
    for i in range(n):
        t = f"t_{i // 4:04d}"
        kind = i % 4
        if kind == 0:
            text = (f'CREATE TABLE "{t}" (\n\t"id" bigserial PRIMARY KEY NOT NULL,\n'
                    f'\t"name" text NOT NULL,\n'
                    f'\t"created_at" timestamp with time zone DEFAULT now() NOT NULL\n);\n')
            specs.append(Spec(f"create_{t}", text))
        elif kind == 1:
            text = (f'ALTER TABLE "{t}" ADD COLUMN "note" text;--> statement-breakpoint\n'
                    f'CREATE INDEX "{t}_name_idx" ON "{t}" USING btree ("name");')
            specs.append(Spec(f"index_{t}", text))
        elif kind == 2:
            text = ("-- Custom SQL migration file, put your code below! --\n"
                    f"INSERT INTO \"{t}\" (\"name\") VALUES ('a'), ('b'), ('c');\n")
            specs.append(Spec(f"seed_{t}", text))
        else:
            text = (f'ALTER TABLE "{t}" ADD COLUMN "parent_id" bigint;--> statement-breakpoint\n'
                    f'ALTER TABLE "{t}" ADD CONSTRAINT "{t}_parent_id_t_0000_id_fk" FOREIGN KEY '
                    f'("parent_id") REFERENCES "public"."t_0000"("id") ON DELETE no action '
                    f"ON UPDATE no action;")
            specs.append(Spec(f"link_{t}", text))
    return specs


def wall(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, str, str, int]:
    t0 = time.perf_counter()
    out = subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=1800)
    return (time.perf_counter() - t0) * 1e3, out.stdout, out.stderr, out.returncode


def startup_ms(argv: Sequence[str], runs: int = 5) -> float:
    return statistics.median(wall(argv)[0] for _ in range(runs))


def run_drizzle(url: str, folder: Path, line: Line) -> dict[str, float]:
    env = {**os.environ, "DATABASE_URL": url}
    total, stdout, stderr, code = wall(
        ["node", str(NODE_DIR / "migrate.mjs"), "--dir", str(folder), "--line", line], env)
    report = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
    if code != 0 or not report.get("ok"):
        raise SystemExit(f"drizzle failed: {report or stderr}")
    return {"importMs": report["importMs"], "insideMs": report["insideMs"],
            "migrateMs": report["migrateMs"], "totalMs": total}


def run_pgshift(url: str, folder: Path, profile: Path | None = None,
                extra: Sequence[str] = ()) -> dict[str, float]:
    env = {**os.environ, "DATABASE_URL": url}
    if profile is not None:
        env["BENCH_PROFILE"] = str(profile)
    python = pgshift_python()
    total, stdout, stderr, code = wall(
        [python, "-c", DRIVER, "apply", "--dir", str(folder), "--output", "json", *extra], env)
    found = [ln for ln in stderr.splitlines() if ln.startswith("BENCH ")]
    report: dict[str, Any] = json.loads(found[-1][6:]) if found else {}
    if code != 0 or report.get("code") != 0:
        raise SystemExit(f"pgshift failed (exit {code}):\n{stdout[-2000:]}\n{stderr[-2000:]}")
    return {"importMs": report["importMs"], "insideMs": report["insideMs"], "totalMs": total}


def pgshift_python() -> str:
    """The interpreter the `pgshift` console script runs with (this venv's)."""
    script = pgshift_argv()[0]
    if script.endswith("pgshift"):
        first = Path(script).read_text().splitlines()[0]
        if first.startswith("#!"):
            return first[2:].strip()
    return sys.executable


def fresh(server: PgServer, label: str) -> str:
    name = f"bench_{label}_{os.getpid()}_{time.monotonic_ns()}"
    server.create_database(name)
    return name


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--migrations", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--line", choices=["stable", "v1"], default="stable")
    parser.add_argument("--profile", type=Path, help="pyinstrument text report of one pgshift run")
    parser.add_argument("--pgshift-arg", action="append", default=[],
                        help="a flag for `pgshift apply` (repeatable): --pgshift-arg=--no-rewrite")
    args = parser.parse_args(argv)
    # SIGTERM (a timeout, Ctrl-C in CI) unwinds like Ctrl-C: the private server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    require_node_modules()
    line: Line = args.line

    with tempfile.TemporaryDirectory(prefix="pgshift-bench-") as tmp, running_server() as server:
        folder = Path(tmp) / "drizzle"
        write_folder(folder, generate(args.migrations), line)
        print(f"{args.migrations} migrations ({line} layout), {args.rounds} rounds, "
              f"PostgreSQL on 127.0.0.1:{server.port}", flush=True)

        node_start = startup_ms(["node", "-e", "0"])
        python_start = startup_ms([pgshift_python(), "-c", "pass"])
        results: dict[str, list[dict[str, float]]] = {"drizzle": [], "pgshift": []}
        for r in range(args.rounds):
            order = ["drizzle", "pgshift"] if r % 2 == 0 else ["pgshift", "drizzle"]
            for tool in order:
                db = fresh(server, tool)
                url = server.url(db)
                if tool == "drizzle":
                    res = run_drizzle(url, folder, line)
                else:
                    res = run_pgshift(url, folder, extra=args.pgshift_arg)
                rows = len(tracking_rows(url, line))
                if rows != args.migrations:
                    raise SystemExit(f"{tool} recorded {rows} of {args.migrations} migrations")
                server.drop_database(db)
                results[tool].append(res)
                print(f"  round {r + 1} {tool:8} inside {res['insideMs']:8.1f} ms   "
                      f"process {res['totalMs']:8.1f} ms", flush=True)

        if args.profile is not None:
            args.profile.parent.mkdir(parents=True, exist_ok=True)
            db = fresh(server, "profile")
            run_pgshift(server.url(db), folder, profile=args.profile, extra=args.pgshift_arg)
            server.drop_database(db)

    def med(tool: str, key: str) -> float:
        return statistics.median(r[key] for r in results[tool])

    def best(tool: str, key: str) -> float:
        return min(r[key] for r in results[tool])

    d_in, p_in = med("drizzle", "insideMs"), med("pgshift", "insideMs")
    d_tot, p_tot = med("drizzle", "totalMs"), med("pgshift", "totalMs")
    print()
    print(f"{'':28}{'drizzle-orm':>14}{'pgshift':>14}")
    print(f"{'interpreter start-up (ms)':28}{node_start:14.1f}{python_start:14.1f}")
    print(f"{'loading the tool (ms)':28}{med('drizzle', 'importMs'):14.1f}"
          f"{med('pgshift', 'importMs'):14.1f}")
    print(f"{'inside the tool (ms)':28}{d_in:14.1f}{p_in:14.1f}")
    print(f"{'  best round (ms)':28}{best('drizzle', 'insideMs'):14.1f}"
          f"{best('pgshift', 'insideMs'):14.1f}")
    print(f"{'  of which migrate() (ms)':28}{med('drizzle', 'migrateMs'):14.1f}{'':>14}")
    print(f"{'whole process (ms)':28}{d_tot:14.1f}{p_tot:14.1f}")
    print(f"{'per migration inside (ms)':28}{d_in / args.migrations:14.2f}"
          f"{p_in / args.migrations:14.2f}")
    print()
    ratio = p_in / d_in
    verdict = "meets" if ratio <= 1.2 else "MISSES"
    best_ratio = best("pgshift", "insideMs") / best("drizzle", "insideMs")
    print(f"ratio inside pgshift/drizzle: {ratio:.2f}x median, {best_ratio:.2f}x best rounds "
          f"({verdict} the 1.2x target); whole process: {p_tot / d_tot:.2f}x")
    if args.pgshift_arg:
        print(f"pgshift ran with: {' '.join(args.pgshift_arg)}")
    if args.profile is not None:
        print(f"pyinstrument report of one pgshift run: {args.profile}")
    print(json.dumps({"bench": "many_migrations", "migrations": args.migrations, "line": line,
                      "rounds": args.rounds, "drizzleInsideMs": round(d_in, 1),
                      "pgshiftInsideMs": round(p_in, 1), "ratioInside": round(ratio, 3),
                      "ratioInsideBest": round(best_ratio, 3), "pgshiftArgs": args.pgshift_arg,
                      "ratioProcess": round(p_tot / d_tot, 3)}))


if __name__ == "__main__":
    main()
