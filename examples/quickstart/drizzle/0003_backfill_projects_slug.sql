-- Custom SQL migration file, put your code below! --
-- Fill the new column for rows written before it existed. pgshift runs this as keyset batches
-- over the primary key (each batch its own transaction, with a checkpoint); the guard
-- `WHERE "slug" IS NULL` makes it idempotent, so a resumed run never repeats a batch's work.
-- pgshift:backfill key=id
UPDATE "projects" SET "slug" = lower(regexp_replace("name", '[^a-zA-Z0-9]+', '-', 'g')) || '-' || "id" WHERE "slug" IS NULL;
