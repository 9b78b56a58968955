"""Which tables a file's own transaction created (`PlannedStatement.on_new_only`), and
`CREATE TABLE IF NOT EXISTS` of a table the catalog lacks in the form a run applies whole
(`CatalogFacts.absent_creates`), against an existing `users` in the catalog."""

from pgshift.safety.analyze import analyze
from pgshift.safety.facts import CatalogFacts
from pgshift.safety.model import LockClass, TxMode
from tests.unit.safety.helpers import migration

#: drizzle-kit < 0.26: every CREATE guarded with IF NOT EXISTS, every FK in a DO block.
OLD_KIT = (
    'CREATE TABLE IF NOT EXISTS "posts" (\n\t"id" serial PRIMARY KEY NOT NULL,\n'
    '\t"author_id" integer NOT NULL\n);\n--> statement-breakpoint\n'
    'DO $$ BEGIN\n ALTER TABLE "posts" ADD CONSTRAINT "posts_author_id_users_id_fk" FOREIGN KEY '
    '("author_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;\n'
    "EXCEPTION\n WHEN duplicate_object THEN null;\nEND $$;\n--> statement-breakpoint\n"
    'CREATE INDEX IF NOT EXISTS "posts_author_idx" ON "posts" USING btree ("author_id");'
)
USERS = CatalogFacts(
    tables=frozenset({("public", "users")}), visible_tables=frozenset({"users"})
)
AS_RUN = CatalogFacts(
    tables=USERS.tables, visible_tables=USERS.visible_tables, absent_creates=True
)


def test_stable_plan_never_reads_the_catalog_for_if_not_exists() -> None:
    a = analyze(migration(OLD_KIT), facts=USERS, lint=False)
    assert [s.rewrite for s in a.statements] == [
        "", "guarded-not-valid-constraint", "guarded-not-valid-constraint", "concurrent-index"
    ]
    assert not any(s.on_new_only for s in a.statements)  # assumed to exist: may hold rows


def test_if_not_exists_of_an_absent_table_creates_it_in_the_form_run_whole() -> None:
    a = analyze(migration(OLD_KIT), facts=AS_RUN, lint=False)
    assert [s.rewrite for s in a.statements] == ["", "", ""]
    assert {s.tx for s in a.statements} == {TxMode.TRANSACTION}
    assert [s.on_new_only for s in a.statements] == [True, True, True]
    # the FK still locks the existing users table it references: a strong lock.
    assert [s.lock for s in a.statements] == [LockClass.WEAK, LockClass.STRONG, LockClass.WEAK]
    assert a.created_tables == frozenset({"posts"})


def test_if_not_exists_of_a_table_in_the_catalog_stays_existing() -> None:
    sql = OLD_KIT.replace('"posts"', '"users"').replace("posts_", "users_")
    a = analyze(migration(sql), facts=AS_RUN, lint=False)
    assert a.statements[-1].rewrite == "concurrent-index"
    assert not any(s.on_new_only for s in a.statements)


def test_on_new_only_is_this_file_s_tables_only() -> None:
    sql = (
        'CREATE TABLE "a" ("id" serial PRIMARY KEY);\n--> statement-breakpoint\n'
        'CREATE INDEX "a_idx" ON "public"."a" ("id");\n--> statement-breakpoint\n'
        'CREATE TYPE "mood" AS ENUM (\'a\');\n--> statement-breakpoint\n'
        'ALTER TABLE "users" ADD COLUMN "x" text;\n--> statement-breakpoint\n'
        "INSERT INTO a (id) VALUES (1);"
    )
    # `earlier`: created by an earlier file of the run, in another transaction: not this one's.
    facts = CatalogFacts(created_earlier=frozenset({"earlier"}), absent_creates=True)
    a = analyze(migration(sql), facts=facts, lint=False)
    assert [s.on_new_only for s in a.statements] == [True, True, False, False, True]
    b = analyze(migration('CREATE INDEX "e_idx" ON "earlier" ("id");'), facts=facts, lint=False)
    assert not b.statements[0].on_new_only
