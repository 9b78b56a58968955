"""safety.nodes: the typed narrowing of pglast's Optional children."""

from __future__ import annotations

import pytest
from pglast import ast, parse_sql
from pglast.enums import AlterTableType

from pgshift.safety.nodes import (
    UnexpectedTree,
    child,
    column_of,
    constraint_of,
    items,
    relation,
    relname,
    required,
    subtype,
)


def _alter(sql: str) -> tuple[ast.AlterTableStmt, ast.AlterTableCmd]:
    stmt = parse_sql(sql)[0].stmt
    assert isinstance(stmt, ast.AlterTableStmt) and stmt.cmds is not None
    return stmt, stmt.cmds[0]


def test_required_gives_the_value_and_names_what_is_missing() -> None:
    assert required("x", "a name") == "x"
    assert required("", "a name") == ""  # only None is missing: "" and 0 are values
    with pytest.raises(UnexpectedTree, match="parse tree without a name"):
        required(None, "a name")


def test_child_narrows_to_the_class_or_says_what_it_got() -> None:
    _, cmd = _alter("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)")
    assert child(cmd.def_, ast.Constraint, "x").conname == "c"
    with pytest.raises(UnexpectedTree, match="Constraint as the column, not ColumnDef"):
        child(cmd.def_, ast.ColumnDef, "the column")
    with pytest.raises(UnexpectedTree, match="NoneType"):
        child(None, ast.ColumnDef, "the column")


def test_an_alter_tables_parts_read_through_the_helpers() -> None:
    stmt, cmd = _alter('ALTER TABLE app.items ADD COLUMN "slug" text NOT NULL')
    rv = relation(stmt)
    assert (rv.schemaname, relname(rv)) == ("app", "items")
    assert column_of(cmd).colname == "slug"
    # AT_AddColumn is 0: pglast still gives the enum, never None.
    assert subtype(cmd) is AlterTableType.AT_AddColumn
    _, add = _alter("ALTER TABLE t ADD CONSTRAINT u UNIQUE (a)")
    assert constraint_of(add).conname == "u"


def test_items_reads_an_absent_list_as_empty() -> None:
    assert items(None) == ()
    assert items((1, 2)) == (1, 2)
    index = parse_sql("CREATE INDEX i ON t (a)")[0].stmt
    assert isinstance(index, ast.IndexStmt)
    assert items(index.indexIncludingParams) == ()
