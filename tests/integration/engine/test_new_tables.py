"""Tables created earlier in the same run: a later untouched file runs as written, in one
transaction, under its stable step keys (engine/apply.py), against real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import events, result_of, run_pgshift, write_drizzle_folder

pytestmark = pytest.mark.integration

TABLES = (
    "CREATE TABLE owners (id serial PRIMARY KEY, name text NOT NULL);\n--> statement-breakpoint\n"
    "CREATE TABLE items (id serial PRIMARY KEY, owner_id integer, name text, slug text);"
)
# every statement here is rewritten on a table that holds rows.
LATER = (
    "CREATE INDEX items_name_idx ON items (name);\n--> statement-breakpoint\n"
    "ALTER TABLE items ADD CONSTRAINT items_owner_fk FOREIGN KEY (owner_id) "
    "REFERENCES owners (id);\n--> statement-breakpoint\n"
    "UPDATE items SET slug = 'x' WHERE slug IS NULL;"
)


def run(verb: str, folder: Path, url: str, *extra: str):
    return run_pgshift(verb, "--dir", str(folder), "--output", "json", *extra, database_url=url)


def keys_of(summary: dict) -> dict[str, list[str]]:
    return {a["migration"]: [s[0] for s in a["steps"]] for a in summary["applied"]}


def test_a_file_on_tables_of_this_run_runs_as_written_in_one_transaction(
    tmp_path: Path, database_url: str, psql
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [TABLES, LATER])
    planned = result_of(run("plan", folder, database_url))
    stable = [s for s in planned["steps"] if s["migration"] == "0001_m1"]
    assert {s["tx"] for s in stable} >= {"autocommit", "batched"}  # the stable plan

    proc = run("apply", folder, database_url)
    assert proc.returncode == 0, proc.stderr
    started = [e for e in events(proc.stdout, "step.started") if e["migration"] == "0001_m1"]
    assert [e["step"] for e in started] == [s["key"] for s in stable]
    assert {e["tx"] for e in started} == {"transaction"}
    assert not events(proc.stdout, "backfill.progress")
    assert keys_of(result_of(proc))["0001_m1"] == [s["key"] for s in stable]
    valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_name_idx'::regclass"
    assert psql(valid) == "t"
    assert psql("SELECT convalidated FROM pg_constraint WHERE conname = 'items_owner_fk'") == "t"
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"


def test_tables_of_an_earlier_run_get_the_safe_rewrites(
    tmp_path: Path, database_url: str, psql
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [TABLES, LATER])
    assert run("apply", folder, database_url, "--target", "0000_m0").returncode == 0
    psql("INSERT INTO owners (name) VALUES ('o'); INSERT INTO items (owner_id) VALUES (1)")
    proc = run("apply", folder, database_url)
    assert proc.returncode == 0, proc.stderr
    started = events(proc.stdout, "step.started")
    assert {e["tx"] for e in started} >= {"autocommit", "batched"}
    assert psql("SELECT slug FROM items") == "x"
    assert psql("SELECT convalidated FROM pg_constraint WHERE conname = 'items_owner_fk'") == "t"


def test_a_failure_leaves_the_file_untouched(tmp_path: Path, database_url: str, psql) -> None:
    bad = LATER + "\n--> statement-breakpoint\nSELECT 1/0;"
    folder = write_drizzle_folder(tmp_path / "m", [TABLES, bad])
    proc = run("apply", folder, database_url)
    assert proc.returncode == 1
    failure = result_of(proc)["failure"]
    assert failure["sqlstate"] == "22012" and failure["migration"] == "0001_m1"
    # as written in one transaction: no index built, no step recorded, nothing to resume.
    assert psql("SELECT to_regclass('items_name_idx') IS NULL") == "t"
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "1"


def test_a_stop_inside_the_file_keeps_the_stable_steps_and_resumes(
    tmp_path: Path, database_url: str, psql
) -> None:
    # the DROP COLUMN is contract: --until-phase backfill stops inside the file, so it runs in
    # its stable steps, and the next run (the tables are now from an earlier run) resumes them.
    later = LATER + "\n--> statement-breakpoint\nALTER TABLE items DROP COLUMN name;"
    folder = write_drizzle_folder(tmp_path / "m", [TABLES, later])
    planned = [s["key"] for s in result_of(run("plan", folder, database_url))["steps"]
               if s["migration"] == "0001_m1"]
    first = run("apply", folder, database_url, "--until-phase", "backfill")
    assert first.returncode == 0, first.stderr
    assert result_of(first)["stopped"]["reason"] == "UntilPhase"
    assert "autocommit" in {e["tx"] for e in events(first.stdout, "step.started")}
    second = run("apply", folder, database_url, "--destructive", "Allow")
    assert second.returncode == 0, second.stderr
    ran = [k for s in (first, second) for k in keys_of(result_of(s)).get("0001_m1", [])]
    assert ran == planned
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "2"


def test_resuming_under_other_settings_is_drift_not_a_silent_skip(
    tmp_path: Path, database_url: str, psql
) -> None:
    # rewritten, the file is: ALTER (expand) | CREATE INDEX CONCURRENTLY | DROP (contract);
    # with --no-rewrite its cut differs, and step 0's record would mark the whole file done.
    folder = write_drizzle_folder(tmp_path / "m", [TABLES])
    assert run("apply", folder, database_url).returncode == 0
    later = (
        "ALTER TABLE items ADD COLUMN note text;\n--> statement-breakpoint\n"
        "CREATE INDEX items_note_idx ON items (note);\n--> statement-breakpoint\n"
        "ALTER TABLE items DROP COLUMN slug;"
    )
    folder = write_drizzle_folder(tmp_path / "m", [TABLES, later])
    first = run("apply", folder, database_url, "--until-phase", "expand")
    assert first.returncode == 0, first.stderr
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "2"
    refused = run("apply", folder, database_url, "--no-rewrite")
    assert refused.returncode == 2
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("error[Drift]:") and "other overrides or --no-rewrite" in line
    # the same settings resume it
    again = run("apply", folder, database_url)
    assert again.returncode == 0, again.stderr
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "2"
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"


# drizzle-kit < 0.26: CREATE TABLE IF NOT EXISTS, FKs guarded in DO blocks, CREATE INDEX IF NOT
# EXISTS. On a fresh database every table is absent, so each file runs whole in one transaction.
OLD_USERS = 'CREATE TABLE IF NOT EXISTS "users" (\n\t"id" serial PRIMARY KEY NOT NULL\n);\n'
OLD_POSTS = (
    'CREATE TABLE IF NOT EXISTS "posts" (\n\t"id" serial PRIMARY KEY NOT NULL,\n'
    '\t"author_id" integer NOT NULL\n);\n--> statement-breakpoint\n'
    'DO $$ BEGIN\n ALTER TABLE "posts" ADD CONSTRAINT "posts_author_id_users_id_fk" FOREIGN KEY '
    '("author_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;\n'
    "EXCEPTION\n WHEN duplicate_object THEN null;\nEND $$;\n--> statement-breakpoint\n"
    'CREATE INDEX IF NOT EXISTS "posts_author_idx" ON "posts" USING btree ("author_id");'
)


def test_if_not_exists_files_on_a_fresh_database_run_whole_in_one_transaction(
    tmp_path: Path, database_url: str, psql
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [OLD_USERS, OLD_POSTS])
    planned = result_of(run("plan", folder, database_url))
    stable = [s for s in planned["steps"] if s["migration"] == "0001_m1"]
    assert {s["tx"] for s in stable} == {"transaction", "autocommit"}  # the stable plan
    proc = run("apply", folder, database_url)
    assert proc.returncode == 0, proc.stderr
    started = [e for e in events(proc.stdout, "step.started") if e["migration"] == "0001_m1"]
    assert [e["step"] for e in started] == [s["key"] for s in stable]
    assert {e["tx"] for e in started} == {"transaction"}
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"
    fk = "SELECT convalidated FROM pg_constraint WHERE conname = 'posts_author_id_users_id_fk'"
    assert psql(fk) == "t"
    valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'posts_author_idx'::regclass"
    assert psql(valid) == "t"


def test_a_lock_on_an_existing_table_is_not_held_past_statements_on_existing_tables(
    tmp_path: Path, database_url: str, psql
) -> None:
    """users exists (an earlier deploy): the FK from the new posts locks it, and an ALTER of the
    existing users follows. One transaction would hold that lock through the ALTER: the file
    runs in its stable steps (NOT VALID, VALIDATE committed on its own, then the ALTER)."""
    then = OLD_POSTS + '\n--> statement-breakpoint\nALTER TABLE "users" ADD COLUMN "bio" text;'
    folder = write_drizzle_folder(tmp_path / "m", [OLD_USERS, then])
    assert run("apply", folder, database_url, "--target", "0000_m0").returncode == 0
    psql("INSERT INTO users DEFAULT VALUES")
    proc = run("apply", folder, database_url)
    assert proc.returncode == 0, proc.stderr
    started = [e for e in events(proc.stdout, "step.started") if e["migration"] == "0001_m1"]
    assert "autocommit" in {e["tx"] for e in started}
    fk = "SELECT convalidated FROM pg_constraint WHERE conname = 'posts_author_id_users_id_fk'"
    assert psql(fk) == "t"


def test_an_fk_to_an_existing_table_then_only_new_tables_runs_in_one_transaction(
    tmp_path: Path, database_url: str, psql
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [OLD_USERS, OLD_POSTS])
    assert run("apply", folder, database_url, "--target", "0000_m0").returncode == 0
    psql("INSERT INTO users DEFAULT VALUES")
    proc = run("apply", folder, database_url)
    assert proc.returncode == 0, proc.stderr
    started = [e for e in events(proc.stdout, "step.started") if e["migration"] == "0001_m1"]
    assert len(started) == 3 and {e["tx"] for e in started} == {"transaction"}
    fk = "SELECT convalidated FROM pg_constraint WHERE conname = 'posts_author_id_users_id_fk'"
    assert psql(fk) == "t"
