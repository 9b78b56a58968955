"""Benchmark: the same drizzle-kit folder under load, drizzle-orm's migrator vs pgshift (issue 6).

    python bench/bench_zero_downtime.py [--rows 1000000] [--clients 4] [--rounds 1]
                                        [--scenarios backfill_not_null,create_index,add_fk,
                                                     new_table_fk]
                                        [--pgshift-tree OTHER-CHECKOUT/.venv/bin/pgshift]

A 1-million-row `items` table (and 1,000 `owners`) is built once in a template database by the
folder's first two migrations (applied by drizzle itself: the create tables, and the `ADD COLUMN
"slug" text` of an earlier deploy) and a seed; every run gets a fresh copy.
While 4 clients do point reads and single-row updates of random items (autocommit, one thread
each, as an application's connection pool would), one tool applies the rest of the folder:

- backfill_not_null: a `--custom` backfill `UPDATE ... WHERE "slug" IS NULL`, then
  `ALTER COLUMN "slug" SET NOT NULL` (what drizzle-kit generates);
- create_index: `CREATE INDEX "items_owner_id_idx" ON "items" ...`;
- add_fk: `ALTER TABLE "items" ADD CONSTRAINT ... FOREIGN KEY ("owner_id") REFERENCES owners`;
- new_table_fk: drizzle-kit < 0.26's form of a new table with an FK to `items` and an index.

The folders are not edited for pgshift: no directives. For each tool and scenario it prints
success, the migration's wall time (the tool's whole process), and the clients' p50, p99 and max
latency over the operations that overlapped the migration, plus their errors. Then each scenario
again with no load, and pgshift's total time against drizzle's (target <= 1.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

if not __package__:  # run as a file (python bench/x.py): the repository root holds `tests`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.interop.drizzle import (
    NODE_DIR,
    Spec,
    pgshift_argv,
    require_node_modules,
    tracking_rows,
    write_folder,
)
from tests.pgserver import PgServer, running_server

BASE = Spec(
    "create_tables",
    'CREATE TABLE "owners" (\n\t"id" bigserial PRIMARY KEY NOT NULL,\n\t"name" text NOT NULL\n);\n'
    "--> statement-breakpoint\n"
    'CREATE TABLE "items" (\n\t"id" bigserial PRIMARY KEY NOT NULL,\n'
    '\t"owner_id" bigint NOT NULL,\n\t"name" text NOT NULL,\n'
    '\t"counter" integer DEFAULT 0 NOT NULL\n);\n',
)

#: the expand migration of an earlier deploy: the application has been running with it.
ADD_SLUG = Spec("add_items_slug", 'ALTER TABLE "items" ADD COLUMN "slug" text;')
#: applied (by drizzle) in the template, before the clients start: every scenario has them.
PRE = [BASE, ADD_SLUG]

SCENARIOS: dict[str, list[Spec]] = {
    "backfill_not_null": [
        Spec("backfill_items_slug",
             "-- Custom SQL migration file, put your code below! --\n"
             "UPDATE \"items\" SET \"slug\" = 'item-' || \"id\" WHERE \"slug\" IS NULL;\n"),
        Spec("items_slug_not_null", 'ALTER TABLE "items" ALTER COLUMN "slug" SET NOT NULL;'),
    ],
    "create_index": [
        Spec("items_owner_id_idx",
             'CREATE INDEX "items_owner_id_idx" ON "items" USING btree ("owner_id");'),
    ],
    "add_fk": [
        Spec("items_owner_id_fk",
             'ALTER TABLE "items" ADD CONSTRAINT "items_owner_id_owners_id_fk" FOREIGN KEY '
             '("owner_id") REFERENCES "public"."owners"("id") ON DELETE no action '
             "ON UPDATE no action;"),
    ],
    # drizzle-kit < 0.26: a new table with a guarded FK to the loaded `items` and an index. The
    # table is new, so the file runs in one transaction; the FK's SHARE ROW EXCLUSIVE on items
    # is held only while statements on the new table follow (issue 14's constraint).
    "new_table_fk": [
        Spec("item_tags",
             'CREATE TABLE IF NOT EXISTS "item_tags" (\n\t"id" bigserial PRIMARY KEY NOT NULL,\n'
             '\t"item_id" bigint NOT NULL,\n\t"tag" text NOT NULL\n);\n'
             "--> statement-breakpoint\n"
             'DO $$ BEGIN\n ALTER TABLE "item_tags" ADD CONSTRAINT "item_tags_item_id_items_id_fk" '
             'FOREIGN KEY ("item_id") REFERENCES "public"."items"("id") ON DELETE no action '
             "ON UPDATE no action;\nEXCEPTION\n WHEN duplicate_object THEN null;\nEND $$;\n"
             "--> statement-breakpoint\n"
             'CREATE INDEX IF NOT EXISTS "item_tags_item_id_idx" ON "item_tags" USING btree '
             '("item_id");'),
    ],
}

#: `--pgshift-tree`: another checkout's pgshift console script (e.g. for "before" figures).
PGSHIFT_SCRIPT: list[str] = []


@dataclass
class Op:
    start: float
    end: float
    ok: bool


@dataclass
class Clients:
    """N threads doing point reads and updates on random items until stopped."""

    url: str
    rows: int
    n: int
    ops: list[list[Op]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        ready = threading.Barrier(self.n + 1)
        for i in range(self.n):
            log: list[Op] = []
            self.ops.append(log)
            t = threading.Thread(target=self._run, args=(i, log, ready), daemon=True)
            t.start()
            self.threads.append(t)
        ready.wait()

    def _run(self, seed: int, log: list[Op], ready: threading.Barrier) -> None:
        rnd = random.Random(seed)
        with psycopg.connect(self.url, autocommit=True, application_name="bench-client") as conn:
            conn.execute("SELECT 1")
            ready.wait()
            while not self.stop.is_set():
                key = rnd.randint(1, self.rows)
                t0 = time.perf_counter()
                ok = True
                try:
                    if rnd.random() < 0.5:
                        conn.execute("SELECT id, name, counter FROM items WHERE id = %s", (key,))
                    else:
                        conn.execute("UPDATE items SET counter = counter + 1 WHERE id = %s",
                                     (key,))
                except psycopg.Error:
                    ok = False
                log.append(Op(t0, time.perf_counter(), ok))

    def finish(self) -> list[Op]:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)
        return [op for log in self.ops for op in log]


@dataclass
class Outcome:
    tool: str
    scenario: str
    loaded: bool
    ok: bool
    seconds: float
    detail: str
    ops: int = 0
    errors: int = 0
    p50: float = 0.0
    p99: float = 0.0
    worst: float = 0.0


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_tool(tool: str, url: str, folder: Path) -> tuple[bool, str]:
    env = {**os.environ, "DATABASE_URL": url}
    if tool == "drizzle":
        argv = ["node", str(NODE_DIR / "migrate.mjs"), "--dir", str(folder)]
    else:
        argv = [*(PGSHIFT_SCRIPT or pgshift_argv()), "apply", "--dir", str(folder), "--output",
                "json"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode == 0:
        return True, ""
    text = (out.stdout + out.stderr).strip().splitlines()
    detail = next((ln for ln in reversed(text) if "deadlock" in ln.lower()), None)
    return False, (detail or (text[-1] if text else f"exit {out.returncode}"))[:300]


def build_template(server: PgServer, rows: int, folder: Path) -> str:
    name = "bench_template"
    server.create_database(name)
    url = server.url(name)
    subprocess.run(["node", str(NODE_DIR / "migrate.mjs"), "--dir", str(folder)],
                   env={**os.environ, "DATABASE_URL": url}, check=True, capture_output=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO owners (name) SELECT 'owner ' || g "
                     "FROM generate_series(1, 1000) g")
        conn.execute("INSERT INTO items (owner_id, name) SELECT 1 + g %% 1000, 'item ' || g "
                     "FROM generate_series(1, %s) g", (rows,))
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
    return name


def one_run(server: PgServer, template: str, tool: str, scenario: str, folder: Path,
            rows: int, clients: int, loaded: bool) -> Outcome:
    db = f"bench_{tool}_{scenario}_{time.monotonic_ns()}"
    server.psql(f'CREATE DATABASE "{db}" TEMPLATE "{template}"')
    url = server.url(db)
    try:
        load = Clients(url, rows, clients) if loaded else None
        if load is not None:
            load.start()
            time.sleep(1.0)  # steady state before the migration starts
        t0 = time.perf_counter()
        ok, detail = run_tool(tool, url, folder)
        t1 = time.perf_counter()
        ops: list[Op] = []
        if load is not None:
            time.sleep(0.3)
            ops = [op for op in load.finish() if op.end >= t0 and op.start <= t1]
        if ok:
            applied = len(tracking_rows(url, "stable"))
            expected = len(PRE) + len(SCENARIOS[scenario])
            if applied != expected:
                ok, detail = False, f"{applied} of {expected} tracking rows"
        lat = [(op.end - op.start) * 1e3 for op in ops]
        return Outcome(tool, scenario, loaded, ok, t1 - t0, detail, ops=len(ops),
                       errors=sum(not op.ok for op in ops), p50=percentile(lat, 0.50),
                       p99=percentile(lat, 0.99), worst=max(lat, default=0.0))
    finally:
        server.drop_database(db)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--tools", default="drizzle,pgshift", help="which tools to run")
    parser.add_argument("--pgshift-tree", metavar="PATH",
                        help="another checkout's pgshift console script")
    args = parser.parse_args(argv)
    if args.pgshift_tree:
        if not Path(args.pgshift_tree).is_file():
            parser.error(f"--pgshift-tree: {args.pgshift_tree} is not a file")
        PGSHIFT_SCRIPT[:] = [args.pgshift_tree]
    # SIGTERM (a timeout, Ctrl-C in CI) unwinds like Ctrl-C: the private server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    require_node_modules()
    scenarios = [s for s in args.scenarios.split(",") if s]
    chosen = [t for t in ("drizzle", "pgshift") if t in args.tools.split(",")]

    results: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="pgshift-bench-") as tmp, running_server() as server:
        root = Path(tmp)
        base = root / "base"
        write_folder(base, PRE, "stable")
        folders = {}
        for s in scenarios:
            folders[s] = root / s
            write_folder(folders[s], [*PRE, *SCENARIOS[s]], "stable")
        print(f"seeding {args.rows:,} items ...", flush=True)
        template = build_template(server, args.rows, base)
        for r in range(args.rounds):
            for s in scenarios:
                for loaded in (True, False):
                    tools = chosen if r % 2 == 0 else chosen[::-1]
                    for tool in tools:
                        o = one_run(server, template, tool, s, folders[s], args.rows,
                                    args.clients, loaded)
                        results.append(o)
                        lat = (f"p50 {o.p50:7.1f}  p99 {o.p99:7.1f}  max {o.worst:8.1f} ms  "
                               f"errors {o.errors}  " if loaded else "")
                        print(f"  {s:18} {tool:8} {'load' if loaded else 'idle':4} "
                              f"{'ok' if o.ok else 'FAILED':6} {o.seconds:7.2f} s  {lat}"
                              f"{o.detail}", flush=True)

    print()
    print(f"{'scenario':18} {'tool':8} {'ok':>6} {'time s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>9} {'ops':>7} {'errors':>6}")
    for s in scenarios:
        for tool in chosen:
            runs = [o for o in results if o.scenario == s and o.tool == tool and o.loaded]
            print(f"{s:18} {tool:8} {sum(o.ok for o in runs):>3}/{len(runs):<2} "
                  f"{statistics.median(o.seconds for o in runs):8.2f} "
                  f"{statistics.median(o.p50 for o in runs):8.1f} "
                  f"{statistics.median(o.p99 for o in runs):8.1f} "
                  f"{max(o.worst for o in runs):9.1f} {sum(o.ops for o in runs):7d} "
                  f"{sum(o.errors for o in runs):6d}")
    pg_loaded = [o for o in results if o.tool == "pgshift" and o.loaded]
    if pg_loaded:
        worst = max(o.worst for o in pg_loaded)
        p99 = max(o.p99 for o in pg_loaded)
        print(f"\npgshift under load: {sum(o.ok for o in pg_loaded)}/{len(pg_loaded)} succeeded "
              f"(target: all); clients' worst stall {worst:.0f} ms (target <= 1000, aim 100); "
              f"worst p99 {p99:.1f} ms (target <= 50)")
    idle = {tool: sum(statistics.median(o.seconds for o in results if o.scenario == s
                                        and o.tool == tool and not o.loaded)
                      for s in scenarios) for tool in chosen}
    all_ok = all(o.ok for o in results if not o.loaded)
    ratio = idle["pgshift"] / idle["drizzle"] if len(idle) == 2 else float("nan")
    print("\nno load, all scenarios: " + ", ".join(f"{t} {v:.2f} s" for t, v in idle.items())
          + (f": pgshift/drizzle {ratio:.2f}x (target <= 1.5x)" if len(idle) == 2 else "")
          + ("" if all_ok else " (some idle runs failed)"))
    print(json.dumps({"bench": "zero_downtime", "rows": args.rows, "clients": args.clients,
                      "results": [o.__dict__ for o in results], "idleRatio": round(ratio, 3)}))


if __name__ == "__main__":
    main()
