"""Resume after an edit (issue 9): a partly applied file that failed can be fixed and finished
with --resume-edited when the steps already applied are unchanged; pgshift's own tables carry a
schema version and are upgraded in place from today's shape, whose records still resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgshift.migrations import read_source
from tests.helpers import events, result_of, run_pgshift, write_drizzle_folder

pytestmark = pytest.mark.integration

USERS = "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);"
HEAD = (
    "ALTER TABLE users ADD COLUMN name text;\n--> statement-breakpoint\n"
    "CREATE INDEX CONCURRENTLY users_name_idx ON users (name);\n--> statement-breakpoint\n"
)
BROKEN = HEAD + "ALTER TABLE users ADD COLUMN nick text;\nSELECT 1/0;\n"
FIXED = HEAD + "ALTER TABLE users ADD COLUMN nick text;\nSELECT 1;\n"


def _started(stdout: str) -> list[str]:
    return [e["step"].rsplit("-", 1)[1] for e in events(stdout, "step.started")]


def test_an_edited_partly_applied_file_resumes_with_resume_edited(
    tmp_path: Path, database_url: str, psql
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, BROKEN])
    failed = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert failed.returncode == 1, failed.stderr
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "2"

    write_drizzle_folder(tmp_path / "m", [USERS, FIXED])
    # without the flag: Drift, and its hint names the flag
    drift = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert drift.returncode == 2
    (line,) = drift.stderr.strip().splitlines()
    assert line.startswith("error[Drift]: ") and "--resume-edited" in line

    # an applied step edited too: a named error listing that step, nothing run
    edited = write_drizzle_folder(
        tmp_path / "e", [USERS, FIXED.replace("ADD COLUMN name text", "ADD COLUMN name varchar")]
    )
    refused = run_pgshift("apply", "--dir", str(edited), "--resume-edited",
                          database_url=database_url)
    assert refused.returncode == 2, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    old_key = psql("SELECT step FROM drizzle.pgshift_steps ORDER BY step LIMIT 1")
    assert line.startswith("error[EditedAppliedStep]: ") and "0001_m1.sql" in line
    assert f"{old_key} (applied; now step" in line and "line 1)" in line
    assert psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'nick'") == "0"

    # plan shows what apply will run
    planned = run_pgshift("plan", "--dir", str(folder), "--resume-edited", "--output", "json",
                          database_url=database_url)
    assert planned.returncode == 0, planned.stderr
    assert [k.rsplit("-", 1)[1] for k in result_of(planned)["willRun"]] == ["2"]

    resumed = run_pgshift("apply", "--dir", str(folder), "--resume-edited", "--output", "json",
                          database_url=database_url)
    assert resumed.returncode == 0, resumed.stderr
    assert _started(resumed.stdout) == ["2"]  # ADD COLUMN name again would have failed
    assert events(resumed.stdout, "steps.resumedEdited")[0]["moved"] == 2
    (m1,) = [m for m in read_source(str(folder)).migrations if m.name == "0001_m1"]
    assert psql("SELECT hash FROM drizzle.__drizzle_migrations ORDER BY id DESC LIMIT 1") == m1.hash
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"
    assert psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'nick'") == "1"


#: pgshift's own tables as the code on main before schema versions created them.
TODAYS_DDL = """
CREATE SCHEMA drizzle;
CREATE TABLE drizzle.__drizzle_migrations (id SERIAL PRIMARY KEY, hash text NOT NULL,
  created_at bigint);
CREATE TABLE IF NOT EXISTS drizzle.pgshift_steps (step text PRIMARY KEY, migration text NOT NULL,
  hash text NOT NULL, done_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS drizzle.pgshift_backfill (step text PRIMARY KEY,
  migration text NOT NULL, last_key text, rows bigint NOT NULL DEFAULT 0,
  batches bigint NOT NULL DEFAULT 0, walked boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now());
"""


def test_todays_tables_are_upgraded_in_place_and_their_records_still_resume(
    tmp_path: Path, database_url: str, psql
) -> None:
    second = (
        "ALTER TABLE users ADD COLUMN lower text;\n--> statement-breakpoint\n"
        "UPDATE users SET lower = lower(email) WHERE lower IS NULL;\n--> statement-breakpoint\n"
        "ALTER TABLE users ADD COLUMN nick text;\n"
    )
    folder = write_drizzle_folder(tmp_path / "m", [USERS, second])
    m0, m1 = read_source(str(folder)).migrations
    # what a run of today's code leaves when killed inside the backfill: the first file applied,
    # the second's step 0 done and recorded, its backfill checkpointed at key 100 of 200.
    psql(TODAYS_DDL)
    psql(USERS + "ALTER TABLE users ADD COLUMN lower text;"
         "INSERT INTO users (email) SELECT 'U' || g FROM generate_series(1, 200) g;"
         "UPDATE users SET lower = lower(email) WHERE id <= 100;")
    psql(f"INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('{m0.hash}', "
         f"{m0.when});"
         f"INSERT INTO drizzle.pgshift_steps (step, migration, hash) VALUES "
         f"('{m1.hash[:12]}-0', '{m1.name}', '{m1.hash}');"
         f"INSERT INTO drizzle.pgshift_backfill (step, migration, last_key, rows, batches) "
         f"VALUES ('{m1.hash[:12]}-1', '{m1.name}', '100', 100, 1)")

    # an edit cannot resume on records without text hashes: named, nothing run or upgraded
    edited = write_drizzle_folder(tmp_path / "e", [USERS, second + "SELECT 1;\n"])
    refused = run_pgshift("apply", "--dir", str(edited), "--resume-edited",
                          database_url=database_url)
    assert refused.returncode == 2, refused.stderr
    assert "error[EditedAppliedStep]" in refused.stderr
    assert "recorded before pgshift kept step text hashes" in refused.stderr
    assert psql("SELECT to_regclass('drizzle.pgshift_schema') IS NULL") == "t"

    run = run_pgshift("apply", "--dir", str(folder), "--output", "json",
                      database_url=database_url)
    assert run.returncode == 0, run.stderr
    assert psql("SELECT version FROM drizzle.pgshift_schema") == "2"
    assert psql("SELECT string_agg(table_name, ',' ORDER BY table_name) FROM "
                "information_schema.columns WHERE table_schema = 'drizzle' "
                "AND column_name = 'text_hash'") == "pgshift_backfill,pgshift_steps"
    # the old records resumed: step 0 not again, the backfill from its checkpoint
    assert _started(run.stdout) == ["1", "2"]
    walk = [p for p in events(run.stdout, "backfill.progress") if p["pass"] == "walk"]
    assert walk[-1]["rows"] == 200  # 100 from the old checkpoint, 100 now
    assert psql("SELECT count(*) FROM users WHERE lower IS DISTINCT FROM lower(email)") == "0"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "2"

    # a database written by a newer pgshift is refused, not downgraded
    psql("UPDATE drizzle.pgshift_schema SET version = 3")
    newer = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert newer.returncode == 2
    assert "error[TrackingTable]" in newer.stderr and "schema version 3" in newer.stderr


def test_resume_edited_cuts_the_file_with_the_catalogs_function_volatility(
    tmp_path: Path, database_url: str, psql
) -> None:
    # a default calling a function the catalog knows as IMMUTABLE runs as written (one step);
    # --resume-edited once cut the file without the catalog's facts (the default volatile,
    # rewritten into more steps), so the unchanged applied steps looked edited.
    psql("CREATE FUNCTION app_code() RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT 7'")
    head = (
        "ALTER TABLE users ADD COLUMN code int DEFAULT app_code();\n--> statement-breakpoint\n"
        "CREATE INDEX CONCURRENTLY users_code_idx ON users (code);\n--> statement-breakpoint\n"
    )
    folder = write_drizzle_folder(
        tmp_path / "m", [USERS, head + "ALTER TABLE users ADD COLUMN nick text;\nSELECT 1/0;\n"]
    )
    failed = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert failed.returncode == 1, failed.stderr
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "2"

    write_drizzle_folder(
        tmp_path / "m", [USERS, head + "ALTER TABLE users ADD COLUMN nick text;\nSELECT 1;\n"]
    )
    resumed = run_pgshift("apply", "--dir", str(folder), "--resume-edited", "--output", "json",
                          database_url=database_url)
    assert resumed.returncode == 0, resumed.stderr
    assert _started(resumed.stdout) == ["2"]
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"
