"""The drizzle side of the interop tests and benchmarks: folders, the real migrator, the rows.

Nothing here stands in for drizzle: `drizzle_migrate` runs drizzle-orm's own `migrate()` with
node-postgres (tools/node/migrate.mjs), 0.45 for the stable layout and 1.0 rc for the v1 layout.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql

from tests.helpers import PGSHIFT, run_pgshift, write_drizzle_folder, write_v1_folder
from tests.pgserver import PgServer

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tools" / "node"
QUICKSTART = ROOT / "examples" / "quickstart"

Line = Literal["stable", "v1"]


class NodeMissing(RuntimeError):
    pass


def require_node_modules() -> None:
    """Fail (never skip) when the drizzle packages are not installed."""
    if shutil.which("node") is None:
        raise NodeMissing("node is not installed: run make node-deps")
    for pkg in ("drizzle-orm", "drizzle-orm-v1", "drizzle-kit", "drizzle-kit-v1", "pg"):
        if not (NODE_DIR / "node_modules" / pkg / "package.json").is_file():
            raise NodeMissing(f"{NODE_DIR}/node_modules/{pkg} is missing: run make node-deps")


# --- folders ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One migration to write: its name (without number or timestamp) and its exact text."""

    name: str
    sql: str


def write_folder(folder: Path, specs: Sequence[Spec], line: Line) -> list[str]:
    """Write `specs` in drizzle-kit's layout for `line` (tests/helpers.py's writers: stable
    `NNNN_name.sql` + `meta/_journal.json`, v1 `<YYYYMMDDHHMMSS>_name/migration.sql`, one second
    apart); returns the migration names in order."""
    sqls, names = [s.sql for s in specs], [s.name for s in specs]
    if line == "stable":
        write_drizzle_folder(folder, sqls, names=names)
        return [f"{i:04d}_{name}" for i, name in enumerate(names)]
    write_v1_folder(folder, sqls, names=names)
    return sorted(p.name for p in folder.iterdir() if (p / "migration.sql").is_file())


def first_k(folder: Path, k: int, dest: Path) -> Path:
    """A copy of a drizzle folder (either line) holding only its first k migrations."""
    journal = folder / "meta" / "_journal.json"
    if journal.is_file():
        data = json.loads(journal.read_text())
        data["entries"] = data["entries"][:k]
        (dest / "meta").mkdir(parents=True)
        (dest / "meta" / "_journal.json").write_text(json.dumps(data, indent=2))
        for entry in data["entries"]:
            shutil.copy(folder / f"{entry['tag']}.sql", dest / f"{entry['tag']}.sql")
    else:
        dest.mkdir(parents=True)
        subdirs = sorted(p.name for p in folder.iterdir() if (p / "migration.sql").is_file())
        for name in subdirs[:k]:
            shutil.copytree(folder / name, dest / name)
    return dest


def drizzle_kit(args: Sequence[str], cwd: Path, line: Line = "stable") -> str:
    """Run the real drizzle-kit (either line) in `cwd`; returns its output."""
    out = subprocess.run(
        ["node", str(NODE_DIR / "kit.mjs"), "--line", line, *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )
    if out.returncode != 0:
        raise AssertionError(f"drizzle-kit {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout + out.stderr


def quickstart_v1(dest: Path) -> Path:
    """The quickstart folder converted by drizzle-kit 1.0's own `up` (journal -> v1 folders)."""
    shutil.copytree(QUICKSTART, dest, ignore=shutil.ignore_patterns("README.md"))
    drizzle_kit(["up"], cwd=dest, line="v1")
    return dest / "drizzle"


# --- the peer ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeResult:
    ok: bool
    returncode: int
    report: dict[str, Any]
    stderr: str


def drizzle_migrate(url: str, folder: Path, line: Line, *, schema: str | None = None,
                    table: str | None = None, check: bool = True) -> NodeResult:
    """drizzle-orm's own migrate() for `folder` (URL through the environment, never argv)."""
    argv = ["node", str(NODE_DIR / "migrate.mjs"), "--dir", str(folder), "--line", line]
    if schema is not None:
        argv += ["--schema", schema]
    if table is not None:
        argv += ["--table", table]
    env = {**os.environ, "DATABASE_URL": url}
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    report = json.loads(lines[-1]) if lines else {}
    result = NodeResult(ok=out.returncode == 0, returncode=out.returncode, report=report,
                        stderr=out.stderr)
    if check and not result.ok:
        raise AssertionError(f"drizzle migrate failed: {report or out.stdout} {out.stderr}")
    return result


# --- pgshift ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def events(self) -> list[dict[str, Any]]:
        found = []
        for ln in self.stdout.splitlines():
            if ln.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    found.append(json.loads(ln))
        return found


def pgshift_argv() -> list[str]:
    """The installed `pgshift` console script (tests/helpers.py's)."""
    return [str(PGSHIFT)]


def pgshift(url: str, *args: str, check: bool = True, timeout: float = 600) -> CliResult:
    """Run the real `pgshift` CLI as a process, the URL through `DATABASE_URL`."""
    out = run_pgshift(*args, database_url=url, timeout=timeout)
    result = CliResult(out.returncode, out.stdout, out.stderr)
    if check and out.returncode != 0:
        raise AssertionError(f"pgshift {' '.join(args)} exited {out.returncode}:\n"
                             f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return result


# --- the database's side -------------------------------------------------------------------------


def tracking_rows(url: str, line: Line, schema: str = "drizzle",
                  table: str = "__drizzle_migrations") -> list[tuple[Any, ...]]:
    """The tracking rows in id order: (hash, created_at), and for v1 (hash, created_at, name)."""
    cols = ["hash", "created_at"] + (["name"] if line == "v1" else [])
    query = sql.SQL("SELECT {} FROM {}.{} ORDER BY id").format(
        sql.SQL(", ").join(map(sql.Identifier, cols)), sql.Identifier(schema),
        sql.Identifier(table))
    with psycopg.connect(url, autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(query).fetchall()]


def tracking_columns(url: str, schema: str = "drizzle",
                     table: str = "__drizzle_migrations") -> list[tuple[str, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, table)).fetchall()]


def query(url: str, text: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(text).fetchall()]  # type: ignore[arg-type]


def schema_dump(server: PgServer, dbname: str, schema: str = "public") -> str:
    """`pg_dump --schema-only` of one schema, without the lines that name the database."""
    env = {**os.environ, "PGPASSWORD": server.password}
    out = subprocess.run(
        [str(server.client_bin / "pg_dump"), "--schema-only", "--no-owner", "--no-privileges",
         "-n", schema, "-h", server.host, "-p", str(server.port), "-U", server.user, dbname],
        env=env, capture_output=True, text=True, check=True,
    )
    return "\n".join(ln for ln in out.stdout.splitlines()
                     if not ln.startswith(("--", "\\restrict", "\\unrestrict"))
                     and "SELECT pg_catalog.set_config" not in ln)
