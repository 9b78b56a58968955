from __future__ import annotations

import pytest

from pgshift.safety import (
    AUTO_BACKFILL,
    CatalogFacts,
    Directives,
    LockClass,
    Phase,
    TxMode,
    analyze,
)
from pgshift.safety.analyze import analyze_all
from tests.unit.safety.helpers import KEY_CASE, migration


def row(s):  # type: ignore[no-untyped-def]
    return (s.phase.value, s.tx.value, s.lock.value, s.rewrite, s.sql)


def test_key_case_plan() -> None:
    a = analyze(migration(KEY_CASE))
    assert [row(s) for s in a.statements] == [
        ("expand", "transaction", "strong", "",
         'ALTER TABLE "projects" ADD COLUMN "slug" text'),
        ("backfill", "batched", "weak", AUTO_BACKFILL,
         "UPDATE \"projects\" SET \"slug\" = LOWER(REPLACE(\"name\", ' ', '-')) "
         'WHERE "slug" IS NULL'),
        ("contract", "transaction", "strong", "set-not-null",
         "ALTER TABLE projects ADD CONSTRAINT projects_slug_not_null_check "
         "CHECK (slug IS NOT NULL) NOT VALID"),
        ("contract", "autocommit", "weak", "set-not-null",
         "ALTER TABLE projects VALIDATE CONSTRAINT projects_slug_not_null_check"),
        ("contract", "transaction", "strong", "set-not-null",
         "ALTER TABLE projects ALTER COLUMN slug SET NOT NULL"),
        ("contract", "transaction", "strong", "set-not-null",
         "ALTER TABLE projects DROP CONSTRAINT projects_slug_not_null_check"),
        ("contract", "autocommit", "weak", "unique-using-index",
         "CREATE UNIQUE INDEX CONCURRENTLY projects_slug_unique ON projects (slug)"),
        ("contract", "transaction", "strong", "unique-using-index",
         "ALTER TABLE projects ADD CONSTRAINT projects_slug_unique UNIQUE USING INDEX "
         "projects_slug_unique"),
    ]
    backfill = a.statements[1].backfill
    assert backfill is not None
    assert backfill.table == (None, "projects") and backfill.key is None
    assert backfill.set_sql == "slug = lower(replace(name, ' ', '-'))"
    assert backfill.where_sql == "slug IS NULL"
    assert backfill.idempotent and backfill.columns == ("slug",)
    validate = a.statements[3]
    assert validate.catch_up is not None
    assert validate.catch_up.table == (None, "projects") and validate.catch_up.column == "slug"
    index = a.statements[6]
    assert index.index_name == "projects_slug_unique" and index.index_unique
    # every rewritten statement points at its original.
    assert [(s.source_index, s.line) for s in a.statements] == [
        (0, 1), (1, 2), (2, 3), (2, 3), (2, 3), (2, 3), (3, 4), (3, 4)
    ]
    assert a.statements[4].original_sql == 'ALTER TABLE "projects" ALTER COLUMN "slug" SET NOT NULL'
    assert a.findings == ()
    assert a.statements[0].summary == "add column projects.slug"


def test_key_case_without_rewrites_runs_as_written_and_lint_says_why() -> None:
    a = analyze(migration(KEY_CASE), rewrite=False)
    assert [s.sql for s in a.statements] == [
        s.strip().rstrip(";") for s in KEY_CASE.split("--> statement-breakpoint")
    ]
    assert [s.tx for s in a.statements] == [TxMode.TRANSACTION] * 4
    assert [(f.rule, f.line) for f in a.findings] == [
        ("unbatched-backfill", 2), ("adding-not-nullable-field", 3),
        ("disallowed-unique-constraint", 4),
    ]


def test_rewrite_false_directive_and_allow() -> None:
    sql = (
        "-- pgshift:rewrite=false allow=adding-not-nullable-field\n"
        "ALTER TABLE t ALTER COLUMN c SET NOT NULL;\n"
    )
    (s,) = analyze(migration(sql)).statements
    assert s.rewrite == "" and s.sql == "ALTER TABLE t ALTER COLUMN c SET NOT NULL"
    assert analyze(migration(sql)).findings == ()


def test_tables_created_in_the_run_are_not_rewritten() -> None:
    sql = (
        "CREATE TABLE items (id int PRIMARY KEY, name text);\n"
        "CREATE INDEX items_name_idx ON items (name);\n"
        "ALTER TABLE items ADD CONSTRAINT items_name_unique UNIQUE (name);\n"
        "INSERT INTO items VALUES (1, 'a');\n"
        "UPDATE items SET name = 'b' WHERE name IS NULL;\n"
    )
    a = analyze(migration(sql))
    assert all(s.rewrite == "" for s in a.statements)
    assert {s.phase for s in a.statements} == {Phase.EXPAND}
    assert {s.tx for s in a.statements} == {TxMode.TRANSACTION}
    assert {s.lock for s in a.statements} == {LockClass.WEAK}
    assert a.created_tables == {"items"}
    assert a.findings == ()
    # in the next file they are existing tables: the analysis depends on the file alone.
    later = analyze(migration("CREATE INDEX i2 ON public.items (id);"))
    assert later.statements[0].rewrite == "concurrent-index"


def test_the_plan_does_not_depend_on_the_database_or_the_run() -> None:
    # a resumed run must plan a half-applied file exactly as the first run did, whatever the
    # database holds by then and whichever earlier files the first run also applied.
    sql = "CREATE INDEX a_idx ON a (x);\nCREATE INDEX b_idx ON app.b (x);\n"
    plans = [
        analyze(migration(sql)),
        # the catalog's tables are facts safety does not read for the plan
        analyze(migration(sql), facts=CatalogFacts(tables=frozenset({("public", "a")}),
                                                  visible_tables=frozenset({"a"}))),
        analyze(migration(sql), facts=CatalogFacts(server_major=14)),
    ]
    assert len({p.statements for p in plans}) == 1
    first = plans[0].statements[0]
    assert first.sql == "CREATE INDEX CONCURRENTLY a_idx ON a (x)"
    assert first.tx is TxMode.AUTOCOMMIT and first.index_name == "a_idx"


def test_override_applies_to_every_statement() -> None:
    sql = "ALTER TABLE t DROP COLUMN a;\nALTER TABLE t DROP COLUMN b;\n"
    override = Directives(phase=Phase.CONTRACT, allow=frozenset({"ban-drop-column"}))
    a = analyze(migration(sql), override=override)
    assert a.findings == ()
    assert all(s.destructive and s.phase is Phase.CONTRACT for s in a.statements)


def test_backfill_directive_batches_a_non_idempotent_update() -> None:
    sql = "-- pgshift:backfill key=id\nUPDATE t SET n = n + 1;\n"
    (s,) = analyze(migration(sql)).statements
    assert s.tx is TxMode.BATCHED and s.phase is Phase.BACKFILL and s.rewrite == ""
    assert s.backfill is not None and s.backfill.key == "id"
    assert not s.backfill.idempotent and s.backfill.where_sql is None


def test_analyze_all_judges_each_file_on_its_own() -> None:
    first = migration("CREATE TABLE x (id int);", name="0001_a")
    second = migration("CREATE INDEX x_id ON x (id);", name="0002_b")
    a, b = analyze_all([first, second])
    assert a.created_tables == {"x"}
    assert b.statements[0].rewrite == "concurrent-index"


def test_a_renamed_new_table_stays_new() -> None:
    sql = "CREATE TABLE a (id int);\nALTER TABLE a RENAME TO b;\nCREATE INDEX b_id ON b (id);\n"
    a = analyze(migration(sql))
    assert a.statements[2].rewrite == "" and a.findings == ()
    assert a.created_tables == {"a", "b"}


def test_backfill_directive_on_an_update_it_cannot_batch_is_an_error() -> None:
    import pytest

    from pgshift.errors import DirectiveError

    sql = "SELECT 1;\n-- pgshift:backfill\nUPDATE t SET a = u.a FROM u WHERE u.id = t.id;\n"
    with pytest.raises(DirectiveError, match=r"0001_test.sql:3: directive 'backfill' needs"):
        analyze(migration(sql))
    with pytest.raises(DirectiveError, match=r"0001_test.sql:2: directive 'backfill' needs"):
        analyze(migration("-- pgshift:backfill\nDELETE FROM t;"))


def test_create_table_if_not_exists_of_an_existing_table_is_not_new() -> None:
    sql = "CREATE TABLE IF NOT EXISTS users (id int);\nCREATE INDEX users_id ON users (id);\n"
    offline = analyze(migration(sql))
    assert offline.statements[1].rewrite == "concurrent-index"
    assert offline.created_tables == frozenset()


def test_a_self_reference_does_not_make_create_table_strong() -> None:
    (s,) = analyze(migration("CREATE TABLE n (id int PRIMARY KEY, parent int REFERENCES n);"
                             )).statements
    assert s.lock is LockClass.WEAK


def test_tables_created_in_the_run_stop_being_new_after_the_gate() -> None:
    sql = (
        "CREATE TABLE t (id int, a int);\n"
        "CREATE INDEX t_a ON t (a);\n"            # before the gate: private, as written
        "ALTER TABLE old DROP COLUMN legacy;\n"   # contract: the gate
        "CREATE INDEX t_id ON t (id);\n"          # after it the app may already write to t
    )
    a = analyze(migration(sql))
    assert [s.rewrite for s in a.statements] == ["", "", "", "concurrent-index"]
    assert a.gated


def test_lint_judges_each_file_on_its_own() -> None:
    from pgshift.safety import lint

    first = migration("CREATE TABLE users (id int, email text);", name="0000_users")
    second = migration("ALTER TABLE users ALTER COLUMN email TYPE varchar(100);", name="0001_t")
    assert [f.rule for f in lint([first, second])] == ["changing-column-type"]
    assert lint([first, second], {"0001_t": Directives(allow=frozenset({"changing-column-type"}))}
                ) == []


def test_override_backfill_applies_to_the_update_only() -> None:
    import pytest

    from pgshift.errors import OverridesError

    sql = "SET LOCAL work_mem = '64MB';\nUPDATE t SET n = n + 1;\n"
    override = Directives(backfill=True, backfill_key="uid")
    first, second = analyze(migration(sql), override=override).statements
    assert first.tx is TxMode.TRANSACTION and first.backfill is None
    assert second.tx is TxMode.BATCHED and second.backfill is not None
    assert second.backfill.key == "uid"
    with pytest.raises(OverridesError, match=r"0001_test: backfill, but .* has no UPDATE"):
        analyze(migration("SELECT 1;"), override=override)


def test_a_top_level_commit_is_a_step_boundary_and_is_not_sent() -> None:
    sql = ("ALTER TABLE t ADD COLUMN a int;\nCOMMIT;\nALTER TABLE t ADD COLUMN b int;\nEND;\n"
           "ALTER TABLE t ADD COLUMN c int;\nCOMMIT;\n")
    a = analyze(migration(sql), lint=False)
    assert [(s.sql, s.after_commit) for s in a.statements] == [
        ("ALTER TABLE t ADD COLUMN a int", False), ("ALTER TABLE t ADD COLUMN b int", True),
        ("ALTER TABLE t ADD COLUMN c int", True)]
    assert not analyze(migration(sql)).findings  # lint: nothing to report


@pytest.mark.parametrize("statement", [
    "BEGIN", "START TRANSACTION", "ROLLBACK", "ABORT", "SAVEPOINT s", "RELEASE SAVEPOINT s",
    "ROLLBACK TO SAVEPOINT s", "PREPARE TRANSACTION 'x'", "COMMIT PREPARED 'x'",
    "ROLLBACK PREPARED 'x'", "COMMIT AND CHAIN",
])
def test_other_transaction_control_is_refused_by_a_run_and_an_error_for_lint(
    statement: str,
) -> None:
    from pgshift.errors import TransactionControl
    from pgshift.safety import Severity

    m = migration(f"ALTER TABLE t ADD COLUMN a int;\n{statement};\nSELECT 1;\n")
    with pytest.raises(TransactionControl) as raised:
        analyze(m, lint=False)
    assert raised.value.message.startswith(f"{m.path}:2: ")
    assert "COMMIT; marks a step boundary" in (raised.value.hint or "")
    assert [(f.rule, f.severity, f.line) for f in analyze(m).findings] == [
        ("transaction-nesting", Severity.ERROR, 2)]


@pytest.mark.parametrize("statement", [
    "SELECT pg_advisory_unlock_all()", "SELECT pg_catalog.pg_advisory_unlock(42)",
    "SELECT pg_advisory_unlock_shared(1, 2)", "DISCARD ALL",
    "DO $$ BEGIN PERFORM pg_advisory_unlock_all(); END $$",
    "DO $$ BEGIN EXECUTE 'discard   all'; END $$",
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM "
    "pg_advisory_unlock(1); END $$",
    "CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC SELECT pg_advisory_unlock(1); END",
    # escaped letters: the text filter that spares the tree walk (issue 14) must not miss them
    'SELECT U&"pg_advisory_\\0075nlock_all"()',
    "DO U&'BEGIN PERFORM pg_advisory_\\0075nlock_all(); END'",
    "DO E'BEGIN PERFORM pg_advisory_\\165nlock_all(); END'",
    "DO E'BEGIN EXECUTE ''\\144iscard all''; END'",
])
def test_releasing_advisory_locks_is_refused_unless_allowed(statement: str) -> None:
    from pgshift.errors import ReleasesLock

    m = migration(f"SELECT 1;\n{statement};\n")
    with pytest.raises(ReleasesLock) as raised:
        analyze(m, lint=False)
    assert raised.value.message.startswith(f"{m.path}:2: ")
    allowed = migration(f"SELECT 1;\n-- pgshift:allow=releases-advisory-lock\n{statement};\n")
    assert len(analyze(allowed, lint=False).statements) == 2
    by_override = analyze(m, lint=False, override=Directives(allow=frozenset({
        "releases-advisory-lock"})))
    assert len(by_override.statements) == 2


def test_a_file_read_but_not_run_is_not_refused() -> None:
    # the backfill finder reads applied files too (drizzle may have applied a BEGIN long ago)
    m = migration("BEGIN;\nUPDATE t SET a = 1 WHERE a IS NULL;\nCOMMIT;\n")
    assert len(analyze(m, lint=False, refuse_control=False).statements) == 2


def test_what_only_looks_like_a_lock_release_is_not_refused() -> None:
    m = migration("SELECT pg_advisory_xact_lock(1);\nDISCARD TEMP;\n"
                  "COMMENT ON TABLE t IS 'we never call pg_advisory_unlock_all()';\n")
    assert len(analyze(m, lint=False).statements) == 3


def test_a_renamed_existing_table_still_exists_under_its_new_name() -> None:
    sql = ("ALTER TABLE a RENAME TO b;\nCREATE INDEX b_x ON b (x);\n"
           "ALTER TABLE b SET SCHEMA archive;\nCREATE INDEX b_y ON archive.b (y);\n")
    a = analyze(migration(sql))
    assert [s.rewrite for s in a.statements] == ["", "concurrent-index", "", "concurrent-index"]


def test_validate_runs_in_the_phase_its_constraint_was_added_in() -> None:
    sql = (
        "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;\n"
        "ALTER TABLE t VALIDATE CONSTRAINT c;\n"
        "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES u (id) NOT VALID;\n"
        "ALTER TABLE t VALIDATE CONSTRAINT f;\n"
        "ALTER TABLE t VALIDATE CONSTRAINT elsewhere;\n"
    )
    a = analyze(migration(sql))
    assert [(s.phase.value, s.tx.value) for s in a.statements] == [
        ("contract", "transaction"), ("contract", "autocommit"),
        ("expand", "transaction"), ("expand", "autocommit"), ("expand", "autocommit"),
    ]
    assert a.findings == ()
