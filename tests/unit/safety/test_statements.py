from __future__ import annotations

import pytest

from pgshift.errors import DirectiveError, ParseError
from pgshift.safety.model import Phase
from pgshift.safety.statements import split_statements
from tests.unit.safety.helpers import migration


def test_splits_chunks_into_statements_with_text_as_written_and_lines() -> None:
    sql = (
        "-- a comment\n"
        "CREATE TABLE a (id int);  CREATE TABLE b (id int);\n"
        "--> statement-breakpoint\n"
        "\n"
        "/* block */ SELECT 'é;x'\n"
        "  ;\n"
        "-- trailing\n"
    )
    stmts = split_statements(migration(sql))
    assert [(s.index, s.line, s.text) for s in stmts] == [
        (0, 2, "CREATE TABLE a (id int)"),
        (1, 2, "CREATE TABLE b (id int)"),
        (2, 5, "SELECT 'é;x'"),
    ]


def test_comment_only_chunk_yields_nothing() -> None:
    sql = "CREATE TABLE a (id int);\n--> statement-breakpoint\n-- nothing here\n  \n"
    assert len(split_statements(migration(sql))) == 1


def test_syntax_error_names_path_and_line() -> None:
    sql = "CREATE TABLE a (id int);\n--> statement-breakpoint\nSELECT 1;\nSELEC 2;\n"
    with pytest.raises(ParseError) as exc:
        split_statements(migration(sql))
    assert exc.value.message.startswith("drizzle/0001_test.sql:4: syntax error")


def test_directives_before_a_statement_apply_to_it_only() -> None:
    sql = (
        "-- pgshift:phase=contract\n"
        "-- pgshift:allow=ban-drop-column\n"
        "ALTER TABLE t DROP COLUMN a;\n"
        "ALTER TABLE t DROP COLUMN b;\n"
    )
    first, second = split_statements(migration(sql))
    assert first.directives.phase is Phase.CONTRACT
    assert first.directives.allow == {"ban-drop-column"}
    assert second.directives.phase is None and not second.directives.allow


def test_trailing_directive_on_the_same_line_applies_to_that_statement() -> None:
    sql = "DROP TABLE t; -- pgshift:allow=ban-drop-table\nDROP TABLE u;\n"
    first, second = split_statements(migration(sql))
    assert first.directives.allow == {"ban-drop-table"}
    assert not second.directives.allow


def test_directive_carries_across_a_breakpoint() -> None:
    sql = "-- pgshift:no-transaction\n--> statement-breakpoint\nVACUUM t;\n"
    (stmt,) = split_statements(migration(sql))
    assert stmt.directives.no_transaction


def test_backfill_key_directive() -> None:
    sql = "-- pgshift:backfill key=uid\nUPDATE t SET a = 1;\n"
    (stmt,) = split_statements(migration(sql))
    assert stmt.directives.backfill and stmt.directives.backfill_key == "uid"


@pytest.mark.parametrize(
    ("comment", "fragment"),
    [
        ("-- pgshift:phase=later", "phase must be one of"),
        ("-- pgshift:no-transactions", "unknown directive 'no-transactions'"),
        ("-- pgshift:allow=ban-drop-colum", "unknown rule ban-drop-colum"),
        ("-- pgshift:rewrite=maybe", "expected true or false"),
        ("-- pgshift:", "empty directive"),
    ],
)
def test_bad_directives_name_path_line_and_directive(comment: str, fragment: str) -> None:
    sql = f"SELECT 1;\n{comment}\nSELECT 2;\n"
    with pytest.raises(DirectiveError) as exc:
        split_statements(migration(sql))
    assert exc.value.message.startswith("drizzle/0001_test.sql:2: ")
    assert fragment in exc.value.message


def test_directive_before_nothing_is_an_error() -> None:
    with pytest.raises(DirectiveError, match=r"0001_test.sql:2: directive applies to no statement"):
        split_statements(migration("SELECT 1;\n-- pgshift:phase=expand\n"))


def test_ordinary_comments_mentioning_pgshift_are_not_directives() -> None:
    (stmt,) = split_statements(migration("-- pgshift rocks\nSELECT 1;\n"))
    assert stmt.directives.phase is None


def test_allow_lists_may_have_spaces_and_combine_with_other_directives() -> None:
    sql = "-- pgshift:allow=ban-drop-column, renaming-column phase=contract\nSELECT 1;\n"
    (stmt,) = split_statements(migration(sql))
    assert stmt.directives.allow == {"ban-drop-column", "renaming-column"}
    assert stmt.directives.phase is Phase.CONTRACT


def test_a_byte_order_mark_is_named() -> None:
    with pytest.raises(ParseError, match="byte-order mark"):
        split_statements(migration("\ufeffSELECT 1;"))


def test_crlf_files_keep_their_lines() -> None:
    stmts = split_statements(migration("SELECT 1;\r\n-- pgshift:phase=contract\r\nSELECT 2;\r\n"))
    assert [(s.line, s.text, s.directives.phase) for s in stmts] == [
        (1, "SELECT 1", None), (3, "SELECT 2", Phase.CONTRACT)]
