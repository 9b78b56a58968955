"""Bad input is found before anything is touched (issue 9): every class below is one named
line (exit 2), and the database holds afterwards exactly what it held before — no table of the
first, good file, no tracking schema or row. Each failed before its fix (an earlier file was
applied first, a name was ignored, a file was skipped or a traceback printed)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import (
    result_of,
    run_pgshift,
    write_drizzle_folder,
    write_plain_folder,
    write_v1_folder,
)
from tests.integration.engine.test_bad_input import one_error_line

pytestmark = pytest.mark.integration

USERS = "CREATE TABLE users (id serial PRIMARY KEY, legacy text);"
DROP_LEGACY = "ALTER TABLE users DROP COLUMN legacy;"

Psql = Callable[[str], str]


def database_shape(psql: Psql) -> str:
    """Every user table and pgshift's tracking schema, with their row counts."""
    tables = psql(
        "SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY 1) FROM pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
    )
    rows = ""
    if psql("SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL") == "t":
        rows = psql("SELECT string_agg(hash || ':' || created_at, ',' ORDER BY id) "
                    "FROM drizzle.__drizzle_migrations")
    return f"tables={tables} rows={rows}"


@pytest.fixture
def untouched(psql: Psql) -> Callable[[], None]:
    """Call it at the end of the test: the database is as it was when the test began."""
    before = database_shape(psql)
    return lambda: _same(before, database_shape(psql))


def _same(before: str, after: str) -> None:
    assert after == before, f"the database was touched: {before} -> {after}"


def step_keys(folder: Path, database_url: str) -> list[dict[str, object]]:
    proc = run_pgshift("plan", "--dir", str(folder), "--output", "json",
                       database_url=database_url)
    assert proc.returncode == 0, proc.stderr
    return list(result_of(proc)["steps"])


# --- names that name nothing ------------------------------------------------------------------


def test_mistyped_stop_before_key_is_refused_before_anything_runs(
    tmp_path: Path, database_url: str, untouched: Callable[[], None]
) -> None:
    """It was ignored, and the gated contract step ran (`stopped: Done`, exit 0)."""
    folder = write_drizzle_folder(tmp_path / "m", [USERS, DROP_LEGACY])
    contract = step_keys(folder, database_url)[-1]["key"]
    assert isinstance(contract, str)
    typo = contract[:-1] + "7"  # the right file, a step it does not have
    line = one_error_line(
        run_pgshift("apply", "--dir", str(folder), "--stop-before", typo,
                    database_url=database_url),
        "UnknownStep",
    )
    assert f"--stop-before {typo}: no step with that key" in line and contract in line
    line = one_error_line(
        run_pgshift("apply", "--dir", str(folder), "--stop-before", "0123456789ab-0",
                    database_url=database_url),
        "UnknownStep",
    )
    assert "0123456789ab-0" in line
    untouched()


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--approve", "0001_m9"], "UnknownMigration", "--approve 0001_m9: no migration"),
        (["--approve", "abcdefabcdef-1"], "UnknownStep", "--approve abcdefabcdef-1: no step"),
        (["--target", "0009_x"], "UnknownMigration", "--target 0009_x"),
        (["--stop-before", "0001_m9"], "UnknownMigration", "--stop-before 0001_m9"),
        # `--stop-before "$KEY"` with KEY unset stopped nothing
        (["--stop-before", ""], "Usage", "--stop-before: empty"),
        (["--approve", " "], "Usage", "--approve: empty"),
        (["--target", ""], "Usage", "--target: empty"),
    ],
)
def test_other_names_that_name_nothing(
    tmp_path: Path,
    database_url: str,
    untouched: Callable[[], None],
    args: list[str],
    code: str,
    needle: str,
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, DROP_LEGACY])
    for command in ("plan", "apply"):
        line = one_error_line(
            run_pgshift(command, "--dir", str(folder), *args, database_url=database_url), code
        )
        assert needle in line
    untouched()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["baseline", "--up-to", "0001_typo"], "baseline --up-to 0001_typo: no migration"),
        (["mark-applied", "0001_typo"], "mark-applied NAME 0001_typo: no migration"),
    ],
)
def test_baseline_and_mark_applied_names(
    tmp_path: Path, database_url: str, untouched: Callable[[], None], args: list[str], needle: str
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, DROP_LEGACY])
    line = one_error_line(
        run_pgshift(*args, "--dir", str(folder), database_url=database_url), "UnknownMigration"
    )
    assert needle in line
    untouched()


def test_names_of_applied_steps_are_consumed_silently_and_migration_names_stop(
    tmp_path: Path, database_url: str, psql: Psql
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, DROP_LEGACY])
    first = step_keys(folder, database_url)[0]["key"]
    done = run_pgshift("apply", "--dir", str(folder), "--target", "0000_m0",
                       database_url=database_url)
    assert done.returncode == 0, done.stderr
    # the approval and stop of an applied step stay in git after use: no error
    proc = run_pgshift(
        "apply", "--dir", str(folder), "--stop-before", "0001_m1", "--approve", str(first),
        "--approve", "0000_m0", "--output", "json", database_url=database_url,
    )
    assert proc.returncode == 0, proc.stderr
    stopped = result_of(proc)["stopped"]
    assert stopped["reason"] == "StopBefore" and stopped["migration"] == "0001_m1"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "1"


def test_unknown_override_name(
    tmp_path: Path, database_url: str, untouched: Callable[[], None]
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, DROP_LEGACY])
    overrides = tmp_path / "o.yaml"
    overrides.write_text("0001_m1_typo: {phase: contract}\n")
    for command in ("apply", "plan", "lint"):
        args = ["--dir", str(folder), "--overrides", str(overrides)]
        line = one_error_line(run_pgshift(command, *args, database_url=database_url),
                              "UnknownMigration")
        assert f"--overrides {overrides}: 0001_m1_typo: no migration of that name" in line
    untouched()


# --- checks that only the full analysis or the catalog made, after earlier files ran -----------


@pytest.mark.parametrize(
    ("second", "code", "needle"),
    [
        ("-- pgshift:backfill\nCREATE TABLE b (id int);", "Directive", "0001_m1.sql:2"),
        ("CREATE TABLE b (id int);\n-- pgshift:no-transaction\n", "Directive",
         "applies to no statement"),
        ("-- pgshift:backfill key=nope\nUPDATE pre SET v = 1;", "BackfillKey",
         "0001_m1.sql:2: -- pgshift:backfill: backfill key pre.nope: no such column"),
        ("-- pgshift:backfill\nUPDATE pre SET v = 1;", "BackfillKey", "has no primary key"),
    ],
)
def test_late_checks_run_before_the_first_file(
    tmp_path: Path,
    database_url: str,
    psql: Psql,
    second: str,
    code: str,
    needle: str,
) -> None:
    psql("CREATE TABLE pre (v int)")
    before = database_shape(psql)
    folder = write_drizzle_folder(tmp_path / "m", [USERS, second])
    line = one_error_line(run_pgshift("apply", "--dir", str(folder), database_url=database_url),
                          code)
    assert needle in line
    _same(before, database_shape(psql))


def test_override_backfill_without_an_update(
    tmp_path: Path, database_url: str, untouched: Callable[[], None]
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, "CREATE TABLE b (id int);"])
    overrides = tmp_path / "o.yaml"
    overrides.write_text("0001_m1: {backfill: true}\n")
    line = one_error_line(
        run_pgshift("apply", "--dir", str(folder), "--overrides", str(overrides),
                    database_url=database_url),
        "Overrides",
    )
    assert "has no UPDATE to batch" in line
    untouched()


@pytest.mark.parametrize("where", ["missing-folder", "a-folder"])
def test_unwritable_result_file(
    tmp_path: Path, database_url: str, untouched: Callable[[], None], where: str
) -> None:
    """It was found after the run, which applied everything and lost its summary."""
    folder = write_drizzle_folder(tmp_path / "m", [USERS])
    target = tmp_path / "nope" / "r.json" if where == "missing-folder" else tmp_path
    line = one_error_line(
        run_pgshift("apply", "--dir", str(folder), "--result-file", str(target),
                    database_url=database_url),
        "Usage",
    )
    assert f"--result-file {target}" in line
    untouched()


# --- the source itself --------------------------------------------------------------------------


def _journal(folder: Path) -> dict[str, object]:
    return json.loads((folder / "meta" / "_journal.json").read_text())


def _set_journal(folder: Path, journal: dict[str, object]) -> None:
    (folder / "meta" / "_journal.json").write_text(json.dumps(journal))


def test_duplicate_journal_tag(tmp_path: Path, database_url: str, untouched) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, "CREATE TABLE b (id int);"])
    journal = _journal(folder)
    entries = journal["entries"]
    assert isinstance(entries, list)
    entries.append({**entries[1], "idx": 2, "when": entries[1]["when"] + 1000})
    _set_journal(folder, journal)
    line = one_error_line(run_pgshift("apply", "--dir", str(folder), database_url=database_url),
                          "Source")
    assert "entries[2]: tag '0001_m1' is also entries[1]" in line
    untouched()


def test_when_too_large_for_bigint(tmp_path: Path, database_url: str, untouched) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, "CREATE TABLE b (id int);"],
                                  when=[1, 2**63])
    line = one_error_line(run_pgshift("apply", "--dir", str(folder), database_url=database_url),
                          "Source")
    assert "entries[1] (0001_m1)" in line and "bigint" in line
    untouched()


def test_nul_byte_is_an_error_not_a_truncated_file(
    tmp_path: Path, database_url: str, untouched
) -> None:
    """The statements after the NUL never ran, and the tracking row was written anyway."""
    folder = write_drizzle_folder(
        tmp_path / "m", [USERS, "CREATE TABLE b (id int);\n\x00\nCREATE TABLE c (id int);"]
    )
    line = one_error_line(run_pgshift("apply", "--dir", str(folder), database_url=database_url),
                          "Source")
    assert "0001_m1.sql:2: a NUL byte" in line
    untouched()


def test_byte_order_mark(tmp_path: Path, database_url: str, untouched) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, "\ufeffCREATE TABLE b (id int);"])
    line = one_error_line(run_pgshift("apply", "--dir", str(folder), database_url=database_url),
                          "Source")
    assert "0001_m1.sql: starts with a UTF-8 byte-order mark" in line
    untouched()


def test_folder_named_like_a_migration(tmp_path: Path, database_url: str, untouched) -> None:
    folder = write_plain_folder(tmp_path / "m", [USERS, "CREATE TABLE b (id int);"])
    (folder / "0003_c.sql").mkdir()
    line = one_error_line(run_pgshift("apply", "--dir", str(folder), database_url=database_url),
                          "Source")
    assert "0003_c.sql: is a folder, not a migration file" in line
    untouched()


@pytest.mark.parametrize("kind", ["loop", "dangling"])
def test_symlink_named_like_a_migration(
    tmp_path: Path, database_url: str, untouched, kind: str
) -> None:
    folder = write_plain_folder(tmp_path / "m", [USERS])
    link = folder / "0002_b.sql"
    if kind == "loop":
        os.symlink(link, link)
    else:
        os.symlink(folder / "gone.sql", link)
    line = one_error_line(run_pgshift("apply", "--dir", str(folder), database_url=database_url),
                          "Source")
    assert "0002_b.sql" in line and ("symlink loop" in line or "symlink to nothing" in line)
    untouched()


def test_upper_case_extension(tmp_path: Path, database_url: str, untouched) -> None:
    folder = write_plain_folder(tmp_path / "m", [USERS])
    (folder / "0002_b.SQL").write_text("CREATE TABLE b (id int);")
    line = one_error_line(run_pgshift("apply", "--dir", str(folder), database_url=database_url),
                          "Source")
    assert "0002_b.SQL: migration files end in lower-case `.sql`" in line
    untouched()


@pytest.mark.parametrize(
    ("layout", "writer", "needle"),
    [
        ("plain", write_drizzle_folder, "layout plain, but the folder has drizzle-kit's journal"),
        ("drizzle-v1", write_drizzle_folder, "layout drizzle-v1, but the folder has"),
        ("drizzle", write_plain_folder, "layout drizzle, but there is no meta/_journal.json"),
        ("drizzle", write_v1_folder, "layout drizzle, but there is no meta/_journal.json"),
        ("plain", write_v1_folder, "is a drizzle-kit 1.0 migration folder"),
        ("drizzle-v1", write_plain_folder, "name does not match the drizzle-v1 layout"),
    ],
)
def test_layout_that_contradicts_the_folder(
    tmp_path: Path, database_url: str, untouched, layout: str, writer, needle: str
) -> None:
    """`--layout plain` on a drizzle folder recorded created_at 0 and 1 (drizzle then applied
    everything again); `--layout drizzle` on a plain folder was `KeyError: '_journal.json'`."""
    folder = writer(tmp_path / "m", [USERS, "CREATE TABLE b (id int);"])
    line = one_error_line(
        run_pgshift("apply", "--dir", str(folder), "--layout", layout, database_url=database_url),
        "Source",
    )
    assert needle in line
    untouched()


def test_tracking_table_with_text_created_at(
    tmp_path: Path, database_url: str, psql: Psql
) -> None:
    """It was `TypeError` in engine/plan.py."""
    psql(
        "CREATE SCHEMA drizzle; CREATE TABLE drizzle.__drizzle_migrations "
        "(id serial PRIMARY KEY, hash text NOT NULL, created_at text);"
        "INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('x', '1')"
    )
    before = database_shape(psql)
    folder = write_drizzle_folder(tmp_path / "m", [USERS])
    for command in ("plan", "apply", "status"):
        line = one_error_line(
            run_pgshift(command, "--dir", str(folder), database_url=database_url), "TrackingTable"
        )
        assert "drizzle.__drizzle_migrations: column created_at is text" in line
    _same(before, database_shape(psql))


def test_sql_files_missing_from_the_journal_are_named_by_lint_and_plan(
    tmp_path: Path, database_url: str, psql: Psql
) -> None:
    """drizzle ignores them, and so does pgshift (compatibility), but not silently."""
    folder = write_drizzle_folder(tmp_path / "m", [USERS])
    (folder / "0001_backfill.sql").write_text("UPDATE users SET legacy = 'x';")
    for command in ("lint", "plan"):
        proc = run_pgshift(command, "--dir", str(folder), "--output", "json",
                           database_url=database_url)
        assert proc.returncode == 0, proc.stderr
        found = [f for f in result_of(proc)["findingList"]
                 if f["rule"] == "unlisted-migration-file"]
        assert len(found) == 1 and found[0]["path"].endswith("0001_backfill.sql")
        assert "not listed in meta/_journal.json" in found[0]["message"]
    text = run_pgshift("lint", "--dir", str(folder))
    assert "0001_backfill.sql:1: warning[unlisted-migration-file]" in text.stdout
    applied = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert applied.returncode == 0, applied.stderr
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "1"


def test_a_backfill_key_an_earlier_file_provides_is_not_refused_early(
    tmp_path: Path, database_url: str, psql: Psql
) -> None:
    """The early key check leaves tables the run itself changes to the step that runs on them:
    the catalog does not know the primary key an earlier file of the run adds."""
    psql("CREATE TABLE pre (v int NOT NULL, w int); INSERT INTO pre VALUES (1, NULL)")
    folder = write_drizzle_folder(
        tmp_path / "m",
        ["ALTER TABLE pre ADD PRIMARY KEY (v);", "-- pgshift:backfill\nUPDATE pre SET w = v;"],
    )
    proc = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert proc.returncode == 0, proc.stderr
    assert psql("SELECT w FROM pre") == "1"
