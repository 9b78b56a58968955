"""Build migrations from SQL text for safety tests."""

from __future__ import annotations

from pgshift.migrations.model import Layout, Migration, split_chunks


def migration(sql: str, name: str = "0001_test", path: str = "drizzle/0001_test.sql") -> Migration:
    return Migration(name=name, when=1, path=path, sql=sql, chunks=split_chunks(sql),
                     layout=Layout.DRIZZLE)


#: the issue's key case, exactly as drizzle-kit's docs write it.
KEY_CASE = (
    'ALTER TABLE "projects" ADD COLUMN "slug" text;--> statement-breakpoint\n'
    "UPDATE \"projects\" SET \"slug\" = LOWER(REPLACE(\"name\", ' ', '-')) "
    'WHERE "slug" IS NULL;--> statement-breakpoint\n'
    'ALTER TABLE "projects" ALTER COLUMN "slug" SET NOT NULL;--> statement-breakpoint\n'
    'ALTER TABLE "projects" ADD CONSTRAINT "projects_slug_unique" UNIQUE("slug");\n'
)
