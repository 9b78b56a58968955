"""The check that runs before the lock: syntax and directives of the pending files."""

import pytest

from pgshift.engine.analysis import quick_check
from pgshift.errors import DirectiveError, ParseError
from pgshift.migrations import read_mapping


def files(*sqls: str):
    return read_mapping({f"{i + 1:04d}_m.sql": s for i, s in enumerate(sqls)}).migrations


def test_good_files_pass() -> None:
    quick_check(
        files(
            "CREATE TABLE a (id int);\n--> statement-breakpoint\n-- pgshift:phase=contract\n"
            "DROP TABLE a;",
            "-- a comment\nSELECT 1;",
        )
    )


def test_syntax_error_names_file_and_line() -> None:
    with pytest.raises(ParseError) as info:
        quick_check(
            files("SELECT 1;", "SELECT 1;\n--> statement-breakpoint\nCREATE TABEL x (id int);")
        )
    assert info.value.message.startswith("0002_m.sql:3: ") and "TABEL" in info.value.message


def test_unknown_directive_names_file_and_line() -> None:
    with pytest.raises(DirectiveError) as info:
        quick_check(files("SELECT 1;\n-- pgshift:phaze=contract\nSELECT 2;"))
    assert info.value.message.startswith("0001_m.sql:2: ") and "phaze" in info.value.message
