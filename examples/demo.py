"""`make demo` (CLI form): a throwaway PostgreSQL, the quickstart folder applied with pgshift.

    python -m examples.demo

1. start a private PostgreSQL 15 on a free port (tests/pgserver.py; removed at the end);
2. `pgshift plan` the quickstart's drizzle-kit folder: every migration pending, cut into steps;
3. `pgshift apply --target 0002_add_projects_slug`: the expand migrations only;
4. the "old application" writes users and projects (no slug yet);
5. `pgshift plan`, then `pgshift apply`: the batched backfill and the NOT NULL contract step;
6. `pgshift status`: what the database holds.

The URL reaches pgshift through `DATABASE_URL`, as in a Job; the password is never printed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.pgserver import running_server

FOLDER = Path(__file__).resolve().parent / "quickstart" / "drizzle"


def pgshift(url: str, *args: str) -> None:
    """Run one pgshift command as a user would, showing the command and its output."""
    print(f"\n$ pgshift {' '.join(args)}", flush=True)
    script = Path(sys.executable).parent / "pgshift"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "pgshift.cli"]
    done = subprocess.run([*argv, *args], env={**os.environ, "DATABASE_URL": url})
    if done.returncode != 0:
        raise SystemExit(f"pgshift {args[0]} exited {done.returncode}")


def old_app_writes_rows(url: str) -> None:
    """Rows written before the new column is filled: the backfill has real work to do."""
    print("\n# the application writes 200 users and 2,000 projects (slug still NULL)")
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO users (email, name) "
            "SELECT 'user' || g || '@example.com', 'User ' || g FROM generate_series(1, 200) g"
        )
        conn.execute(
            "INSERT INTO projects (owner_id, name) "
            "SELECT 1 + g % 200, 'Project ' || g FROM generate_series(1, 2000) g"
        )


def main() -> None:
    # SIGTERM (a timeout, Ctrl-C in CI) unwinds like Ctrl-C: the private server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print("starting a throwaway PostgreSQL 15 ...", flush=True)
    with running_server() as server:
        server.create_database("shop")
        url = server.url("shop")
        print(f"PostgreSQL on 127.0.0.1:{server.port}, database shop")
        common = ["--dir", str(FOLDER)]
        pgshift(url, "plan", *common)
        pgshift(url, "apply", *common, "--target", "0002_add_projects_slug")
        old_app_writes_rows(url)
        pgshift(url, "plan", *common)
        pgshift(url, "apply", *common)
        pgshift(url, "status", *common)
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE slug IS NULL) FROM projects"
            ).fetchone()
        assert row is not None
        print(f"\nprojects: {row[0]} rows, {row[1]} without a slug; slug is NOT NULL now")
        print("stopping PostgreSQL ...")
    print("done")


if __name__ == "__main__":
    main()
