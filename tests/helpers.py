"""Helpers shared by every test: migration folders from SQL strings, running the CLI.

- `write_drizzle_folder(path, [sql, ...])`: drizzle-kit's stable layout (meta/_journal.json);
- `write_v1_folder(path, [sql, ...])`: drizzle-kit 1.0 (`<YYYYMMDDHHMMSS>_<name>/migration.sql`);
- `write_plain_folder(path, [sql, ...])`: `NNNN_<name>.sql`;
- `run_pgshift(*args, database_url=..., env=...)`: the real console script in a subprocess, the
  URL passed through the environment (as a Job does), never on the command line;
- `start_pgshift(...)`: the same, without waiting (for SIGKILL/SIGTERM and concurrency tests);
- `GATE`, `waiting_on_gate(conn)`, `pgshift_backends(conn)`: stop a run at an exact statement
  (it waits while the test holds advisory lock 4242) and count pgshift's sessions;
- `result_of(proc)`: the summary (the last `{"event": "result"}` line of `--output json`);
- `assert_no_secret(text, password)`: no URL userinfo, no `password=` value, JSON lines valid,
  and (a distinctive password) none of its forms anywhere; `normalized(text)` for comparing
  two runs' output (a short password's run against a distinctive one's).
"""

from __future__ import annotations

import calendar
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
PGSHIFT = REPO / ".venv" / "bin" / "pgshift"
#: first `when` of generated stable folders (2025-11-01T00:00:00Z), one second apart.
BASE_WHEN = 1761955200000


def _name(i: int, names: Sequence[str] | None) -> str:
    return names[i] if names else f"m{i}"


def write_drizzle_folder(
    path: Path,
    sqls: Sequence[str],
    *,
    names: Sequence[str] | None = None,
    when: Sequence[int] | None = None,
) -> Path:
    """drizzle-kit stable layout: `<tag>.sql` beside `meta/_journal.json` (tags `0000_m0`...)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "meta").mkdir(exist_ok=True)
    entries = []
    for i, text in enumerate(sqls):
        tag = f"{i:04d}_{_name(i, names)}"
        (path / f"{tag}.sql").write_text(text, encoding="utf-8", newline="")
        entries.append(
            {
                "idx": i,
                "version": "7",
                "when": when[i] if when else BASE_WHEN + i * 1000,
                "tag": tag,
                "breakpoints": True,
            }
        )
    journal = {"version": "7", "dialect": "postgresql", "entries": entries}
    (path / "meta" / "_journal.json").write_text(json.dumps(journal, indent=2), encoding="utf-8")
    return path


def write_v1_folder(
    path: Path,
    sqls: Sequence[str],
    *,
    names: Sequence[str] | None = None,
    start: str = "20251101000000",
) -> Path:
    """drizzle-kit 1.0 layout: one `<YYYYMMDDHHMMSS>_<name>/migration.sql` per migration."""
    path.mkdir(parents=True, exist_ok=True)
    base = calendar.timegm(time.strptime(start, "%Y%m%d%H%M%S"))
    for i, text in enumerate(sqls):
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(base + i))
        folder = path / f"{stamp}_{_name(i, names)}"
        folder.mkdir(exist_ok=True)
        (folder / "migration.sql").write_text(text, encoding="utf-8", newline="")
        (folder / "snapshot.json").write_text("{}", encoding="utf-8")
    return path


def write_plain_folder(
    path: Path, sqls: Sequence[str], *, names: Sequence[str] | None = None
) -> Path:
    """Hand-written layout: `0001_<name>.sql`, `0002_...`."""
    path.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(sqls):
        (path / f"{i + 1:04d}_{_name(i, names)}.sql").write_text(text, encoding="utf-8", newline="")
    return path


def pgshift_env(
    database_url: str | None = None, env: dict[str, str] | None = None
) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url is not None:
        base["DATABASE_URL"] = database_url
    base.update(env or {})
    return base


def run_pgshift(
    *args: str,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `.venv/bin/pgshift ARGS` and wait; the URL goes in `DATABASE_URL`, not argv."""
    return subprocess.run(
        [str(PGSHIFT), *args],
        env=pgshift_env(database_url, env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_pgshift(
    *args: str, database_url: str | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(PGSHIFT), *args],
        env=pgshift_env(database_url, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def json_lines(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def result_of(proc: subprocess.CompletedProcess[str] | str) -> dict[str, Any]:
    """The summary printed by `--output json` (the last `"event": "result"` line)."""
    stdout = proc if isinstance(proc, str) else proc.stdout
    results = [d for d in json_lines(stdout) if d.get("event") == "result"]
    if not results:
        stderr = "" if isinstance(proc, str) else proc.stderr
        raise AssertionError(f"no result line in stdout:\n{stdout}\nstderr:\n{stderr}")
    return results[-1]


def events(stdout: str, name: str) -> list[dict[str, Any]]:
    return [d for d in json_lines(stdout) if d.get("event") == name]


#: a postgres URL's userinfo (up to its last `@` before whitespace or a quote).
_URL_USERINFO = re.compile(r"postgres(?:ql)?://((?:[^\s@'\"]*@)+)", re.IGNORECASE)
_PASSWORD_FIELD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s\"]+)", re.IGNORECASE)
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?")
#: durations: progress fields, the summary's `[key, phase, ms]` steps, the text table's "12 ms".
_DURATION = re.compile(
    r'("(?:durationMs|waitedMs|delayMs)": ?|"(?:expand|backfill|contract)", ?)\d+|\b\d+ ms\b'
)


def assert_no_secret(text: str, password: str, *, distinctive: bool = True) -> None:
    """No credential in `text`, by the definition the redaction keeps (pgshift/logs.py):
    - every postgres URL in it carries `***` as its whole userinfo, or none;
    - every `password=` field (conninfo, `PGPASSWORD=`) reads `***`;
    - every line that starts with `{` is valid JSON, and its `password`-named keys hold `***`;
    - `distinctive` (a password like the test server's): none of its forms, raw or
      percent-encoded, appears anywhere.
    A one-character or common password (`s`, `1`, `result`) necessarily appears as characters
    of other words: pass `distinctive=False`, and compare the output with the same run's under
    a distinctive password (`normalized`): nothing around it mangled, nothing of it echoed."""
    for m in _URL_USERINFO.finditer(text):
        assert m.group(1) == "***@", f"URL userinfo {m.group(0)!r} leaked into output:\n{text}"
    for m in _PASSWORD_FIELD.finditer(text):
        assert m.group(1) == "***", f"password field {m.group(0)!r} in output:\n{text}"
    for line in text.splitlines():
        if line.strip().startswith("{"):
            data = json.loads(line)  # raises on a line that redaction turned into non-JSON
            _assert_no_password_keys(data)
    if distinctive:
        for form in {
            password,
            urllib.parse.quote(password, safe=""),
            urllib.parse.quote(password),
            urllib.parse.quote_plus(password),
        }:
            assert form not in text, f"secret form {form!r} leaked into output:\n{text}"


def _assert_no_password_keys(value: Any) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if str(k).lower() in ("password", "pgpassword"):
                assert v in ("***", None, ""), f"{k}: {v!r}"
            _assert_no_password_keys(v)
    elif isinstance(value, list):
        for v in value:
            _assert_no_password_keys(v)


def normalized(text: str, **names: str) -> str:
    """`text` without what differs between two runs of the same scenario: timestamps and
    durations, and the given names (e.g. `db=database_name`) replaced by their keys."""
    out = _DURATION.sub(lambda m: (m.group(1) or "") + "0", _TIMESTAMP.sub("<time>", text))
    for key, value in names.items():
        out = out.replace(value, f"<{key}>")
    return out


def run_example(module: str, timeout: float) -> str:
    """`python -m <module>` from the repository, as `make demo` runs it; its output (stdout and
    stderr). Past the timeout it gets SIGTERM, so it stops what it started, and the test fails."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        output, _ = proc.communicate(timeout=60)
        pytest.fail(f"{module} took over {timeout} s:\n{output[-4000:]}")
    assert proc.returncode == 0, output[-4000:]
    return output


def handles_sigterm(pid: int) -> bool:
    """The process has installed a SIGTERM handler (its SigCgt mask in /proc): pgshift's own
    code runs. A synchronisation point for "SIGTERM during start-up"."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) & (1 << (15 - 1)))


def wait_for(predicate: Any, what: str, limit: float = 60.0, interval: float = 0.05) -> None:
    """Poll until `predicate()` is true (a synchronisation point, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


PYTHON = sys.executable


#: a statement that waits while the test holds advisory lock 4242 in another session: it lets a
#: test stop a run at an exact point without sleeping.
GATE = "SELECT pg_advisory_xact_lock(4242);"


def waiting_on_gate(conn: Any) -> bool:
    """A session (the run) is waiting at `GATE`."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = 4242"
    ).fetchone()
    return bool(row and row[0])


def pgshift_backends(conn: Any) -> int:
    """pgshift's sessions on the current database (application_name 'pgshift')."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgshift' "
        "AND datname = current_database()"
    ).fetchone()
    return int(row[0]) if row else 0


def scratch_databases(server: Any) -> list[str]:
    """The scratch databases (`pgshift_scratch_*`) on a `tests.pgserver.PgServer`, sorted."""
    out = server.psql(
        "SELECT datname FROM pg_database WHERE starts_with(datname, 'pgshift_scratch_') "
        "ORDER BY 1"
    )
    return list(out.split())
def write_down_files(folder: Path, downs: dict[str, str]) -> Path:
    """Down files beside a folder's migrations: migration name -> down SQL. A drizzle-kit 1.0
    folder gets `<folder>/down.sql`; every other layout `<name>.down.sql` beside `<name>.sql`."""
    for name, text in downs.items():
        v1 = (folder / name).is_dir()
        target = folder / name / "down.sql" if v1 else folder / f"{name}.down.sql"
        target.write_text(text, encoding="utf-8", newline="")
    return folder
