from __future__ import annotations

import pytest
from pglast import parse_sql

from pgshift.safety.backfill import backfill_for, batchable, idempotent


def update(sql: str):  # type: ignore[no-untyped-def]
    return parse_sql(sql)[0].stmt


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE t SET a = lower(b) WHERE a IS NULL",
        "UPDATE t SET a = lower(b) WHERE a IS NULL AND b IS NOT NULL",
        "UPDATE t SET a = 'x', c = 1 WHERE c > 0 AND a IS NULL",
        "UPDATE t SET status = 'open' WHERE status = 'new'",
        "UPDATE t SET status = 'open' WHERE status <> 'open'",
        "UPDATE t SET status = 'open' WHERE status != 'open'",
        "UPDATE t SET status = 'open' WHERE NOT (status = 'open')",
        "UPDATE t SET n = 0 WHERE n IS DISTINCT FROM 0",
        "UPDATE t SET a = b * 2 WHERE a <> b * 2",
        "UPDATE s.t SET a = 1 WHERE t.a IS NULL",
    ],
)
def test_idempotent_guards(sql: str) -> None:
    assert idempotent(update(sql))


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE t SET a = 1",
        "UPDATE t SET a = a + 1 WHERE a > 0",
        "UPDATE t SET a = NULL WHERE a IS NULL",
        "UPDATE t SET a = 1 WHERE b IS NULL",
        "UPDATE t SET a = 1 WHERE a IS NULL OR b = 2",
        "UPDATE t SET status = 'new' WHERE status = 'new'",
        "UPDATE t SET a = 2 WHERE a <> 1",
        "UPDATE t SET a = 1 FROM u WHERE a IS NULL",
        "UPDATE t SET a = 1 WHERE a IS NULL RETURNING id",
        "WITH x AS (SELECT 1) UPDATE t SET a = 1 WHERE a IS NULL",
        "UPDATE t SET (a, b) = (1, 2) WHERE a IS NULL",
        "UPDATE t SET a[1] = 1 WHERE a IS NULL",
        "UPDATE t AS x SET a = 1 WHERE x.a IS NULL",
    ],
)
def test_not_idempotent(sql: str) -> None:
    assert not idempotent(update(sql))


def test_batchable() -> None:
    assert batchable(update("UPDATE t SET a = 1"))
    assert not batchable(update("UPDATE t SET a = 1 FROM u"))
    assert not batchable(update("UPDATE t SET a = 1 WHERE CURRENT OF c"))


def test_backfill_spec_renders_set_and_where_that_reparse() -> None:
    b = backfill_for(update(
        'UPDATE "App"."Projects" SET "Slug" = lower("Name"), n = DEFAULT, (x, y) = (1, 2) '
        'WHERE "Slug" IS NULL AND n > 0'
    ), "id")
    assert b.table == ("App", "Projects") and b.key == "id"
    assert b.set_sql == '"Slug" = lower("Name"), n = DEFAULT, ( x, y) = (1, 2)'
    assert b.where_sql == '"Slug" IS NULL AND n > 0'
    assert b.columns == ("Slug", "n", "x", "y")
    assert b.idempotent
    # the engine composes `UPDATE ... SET <set_sql> WHERE (<where_sql>) AND <key range>`.
    parse_sql(f"UPDATE t SET {b.set_sql} WHERE ({b.where_sql}) AND id > 1 AND id <= 9")
