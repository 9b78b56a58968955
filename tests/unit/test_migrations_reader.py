"""The reader: every layout read exactly as drizzle's migrator reads it, and bad sources named."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from pgshift.errors import SourceError
from pgshift.migrations import Layout, configmap_problems, detect_layout, read_mapping, read_source
from pgshift.migrations.model import BREAKPOINT
from tests.helpers import BASE_WHEN, write_drizzle_folder, write_plain_folder, write_v1_folder


def test_stable_folder_in_journal_order_with_drizzles_hash(tmp_path: Path) -> None:
    text = "CREATE TABLE a (id int);\r\n--> statement-breakpoint\r\n-- c\n\nSELECT 1;"
    folder = write_drizzle_folder(tmp_path, ["SELECT 0;", text])
    source = read_source(folder)
    assert source.layout is Layout.DRIZZLE
    assert [m.name for m in source.migrations] == ["0000_m0", "0001_m1"]
    m1 = source.migrations[1]
    assert m1.when == BASE_WHEN + 1000
    # sha256 of the file's exact bytes, CRLF included, before splitting
    assert m1.hash == hashlib.sha256(text.encode()).hexdigest()
    assert [c.sql for c in m1.chunks] == text.split(BREAKPOINT)
    assert [c.line for c in m1.chunks] == [1, 2]


def test_journal_order_wins_over_file_names(tmp_path: Path) -> None:
    folder = write_drizzle_folder(tmp_path, ["SELECT 1;", "SELECT 2;"])
    journal = json.loads((folder / "meta" / "_journal.json").read_text())
    journal["entries"].reverse()
    (folder / "meta" / "_journal.json").write_text(json.dumps(journal))
    assert [m.name for m in read_source(folder).migrations] == ["0001_m1", "0000_m0"]


def test_v1_folders_sorted_with_utc_millis(tmp_path: Path) -> None:
    folder = write_v1_folder(tmp_path, ["SELECT 1;", "SELECT 2;"], start="20250102030405")
    source = read_source(folder)
    assert source.layout is Layout.DRIZZLE_V1
    assert [m.name for m in source.migrations] == ["20250102030405_m0", "20250102030406_m1"]
    assert source.migrations[0].when == 1735787045000  # 2025-01-02T03:04:05Z


def test_plain_files_sorted_by_number(tmp_path: Path) -> None:
    for name in ("10_ten.sql", "2_two.sql", "0001_one.sql"):
        (tmp_path / name).write_text("SELECT 1;")
    source = read_source(tmp_path)
    assert source.layout is Layout.PLAIN
    assert [(m.name, m.when) for m in source.migrations] == [
        ("0001_one", 1),
        ("2_two", 2),
        ("10_ten", 10),
    ]


def test_configmap_encodings_read_like_folders(tmp_path: Path) -> None:
    stable = write_drizzle_folder(tmp_path / "s", ["SELECT 1;", "SELECT 2;"])
    data = {"_journal.json": (stable / "meta" / "_journal.json").read_text()}
    data.update({p.name: p.read_text() for p in stable.glob("*.sql")})
    assert read_mapping(data).digest == read_source(stable).digest
    v1 = write_v1_folder(tmp_path / "v", ["SELECT 1;"])
    v1_data = {f"{d.name}.sql": (d / "migration.sql").read_text() for d in v1.iterdir()}
    assert read_mapping(v1_data).digest == read_source(v1).digest
    assert detect_layout(v1_data) is Layout.DRIZZLE_V1


def test_mounted_configmap_dot_entries_are_ignored(tmp_path: Path) -> None:
    write_plain_folder(tmp_path, ["SELECT 1;"])
    (tmp_path / "..data").mkdir()
    (tmp_path / "..2025_01_01").mkdir()
    assert [m.name for m in read_source(tmp_path).migrations] == ["0001_m0"]


@pytest.mark.parametrize(
    ("journal", "needle"),
    [
        ('{"entries": [', "malformed JSON at line 1"),
        ('{"version": "7"}', 'no "entries" list'),
        ('{"dialect": "mysql", "entries": []}', "dialect is 'mysql'"),
        ('{"entries": [{"when": 1}]}', 'entries[0]: "tag" is missing'),
        ('{"entries": [{"tag": "0000_m0", "when": "soon"}]}', '"when" is missing or not'),
        ('{"entries": [{"tag": "0009_gone", "when": 1}]}', "0009_gone.sql is missing"),
        ("[]", 'no "entries" list'),
        # wrong types (issue 9): each named, none read as something else
        ('{"entries": {}}', 'no "entries" list'),
        ('{"entries": [{"tag": 5, "when": 1}]}', '"tag" is missing or not a string'),
        ('{"entries": [{"tag": "0000_m0", "when": true}]}', '"when" is missing or not'),
        ('{"entries": [{"tag": "0000_m0", "when": 1.5}]}', '"when" is missing or not'),
        ('{"entries": [{"tag": "0000_m0", "when": -1}]}', '"when" is missing or not'),
        ('{"entries": ["0000_m0"]}', "entries[0]: not an object"),
        ('\ufeff{"entries": []}', "malformed JSON"),
    ],
)
def test_bad_journals_are_named(tmp_path: Path, journal: str, needle: str) -> None:
    folder = write_drizzle_folder(tmp_path, ["SELECT 1;"])
    (folder / "meta" / "_journal.json").write_text(journal)
    with pytest.raises(SourceError) as info:
        read_source(folder)
    assert needle in info.value.message and "_journal.json" in info.value.message


def test_other_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a folder"):
        read_source(tmp_path / "nope")
    with pytest.raises(SourceError, match="no migrations found"):
        read_source(tmp_path)
    (tmp_path / "0001_a.sql").write_bytes(b"SELECT '\xff';")
    with pytest.raises(SourceError, match="not UTF-8"):
        read_source(tmp_path)
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "1_b.sql").write_text("SELECT 1;")
    with pytest.raises(SourceError, match="same `when`/number"):
        read_source(tmp_path)
    (tmp_path / "1_b.sql").unlink()
    (tmp_path / "notes.sql").write_text("")
    with pytest.raises(SourceError, match="does not match the plain layout"):
        read_source(tmp_path)


def test_bad_v1_timestamp(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a valid YYYYMMDDHHMMSS"):
        read_mapping({"20251399000000_x.sql": "SELECT 1;"}, Layout.DRIZZLE_V1)


def test_journal_and_v1_folders_together_are_refused(tmp_path: Path) -> None:
    write_drizzle_folder(tmp_path, ["SELECT 1;"])
    write_v1_folder(tmp_path, ["SELECT 2;"])
    with pytest.raises(SourceError, match="both a journal and v1"):
        read_source(tmp_path)


def test_configmap_problems() -> None:
    assert configmap_problems({"ok.sql": "x"}) == []
    problems = configmap_problems({"bad/key.sql": "x", "big.sql": "x" * 2000}, limit_bytes=1000)
    assert any("bad/key.sql" in p for p in problems) and any("exceeds" in p for p in problems)


# --- issue 9: nothing is skipped silently, no layout contradicts its folder ---------------------


def test_nul_byte_and_byte_order_mark_are_refused() -> None:
    with pytest.raises(SourceError, match=r"0001_a.sql:2: a NUL byte"):
        read_mapping({"0001_a.sql": "SELECT 1;\nSELECT\x002;"}, Layout.PLAIN)
    with pytest.raises(SourceError, match="byte-order mark"):
        read_mapping({"0001_a.sql": "\ufeffSELECT 1;"})


def test_duplicate_tags_and_huge_when_in_the_journal(tmp_path: Path) -> None:
    folder = write_drizzle_folder(tmp_path, ["SELECT 1;"])
    entry = {"tag": "0000_m0", "when": 1}
    (folder / "meta" / "_journal.json").write_text(
        json.dumps({"entries": [entry, {**entry, "when": 2}]})
    )
    with pytest.raises(SourceError, match=r"entries\[1\]: tag '0000_m0' is also entries\[0\]"):
        read_source(folder)
    (folder / "meta" / "_journal.json").write_text(
        json.dumps({"entries": [{**entry, "when": 2**63}]})
    )
    with pytest.raises(SourceError, match="does not fit the tracking table's bigint"):
        read_source(folder)
    with pytest.raises(SourceError, match="does not fit"):
        read_mapping({f"{2**63}_x.sql": "SELECT 1;"})


def test_journal_without_idx_is_read_like_drizzle(tmp_path: Path) -> None:
    folder = write_drizzle_folder(tmp_path, ["SELECT 1;"])
    (folder / "meta" / "_journal.json").write_text(
        json.dumps({"entries": [{"tag": "0000_m0", "when": 5}]})
    )
    assert [m.when for m in read_source(folder).migrations] == [5]


def test_entries_that_look_like_migrations_are_never_skipped(tmp_path: Path) -> None:
    write_plain_folder(tmp_path, ["SELECT 1;"])
    (tmp_path / "0002_x.sql").mkdir()
    with pytest.raises(SourceError, match=r"0002_x\.sql: is a folder"):
        read_source(tmp_path)
    (tmp_path / "0002_x.sql").rmdir()
    (tmp_path / "0002_x.sql").symlink_to(tmp_path / "0002_x.sql")
    with pytest.raises(SourceError, match="symlink loop"):
        read_source(tmp_path)
    (tmp_path / "0002_x.sql").unlink()
    (tmp_path / "0002_x.SQL").write_text("SELECT 2;")
    with pytest.raises(SourceError, match="lower-case"):
        read_source(tmp_path)
    (tmp_path / "0002_x.SQL").unlink()
    # other entries are not migrations, for drizzle either: not read
    (tmp_path / "README.md").symlink_to(tmp_path / "gone")
    (tmp_path / "snapshots").mkdir()
    assert [m.name for m in read_source(tmp_path).migrations] == ["0001_m0"]


def test_a_journal_that_is_not_a_file_is_not_read_as_a_plain_folder(tmp_path: Path) -> None:
    folder = write_drizzle_folder(tmp_path, ["SELECT 1;"])
    (folder / "meta" / "_journal.json").unlink()
    (folder / "meta" / "_journal.json").mkdir()
    with pytest.raises(SourceError, match=r"_journal\.json: not a regular file"):
        read_source(folder)
    (folder / "meta" / "_journal.json").rmdir()
    (folder / "meta" / "_journal.json").symlink_to(folder / "meta" / "gone.json")
    with pytest.raises(SourceError, match="symlink to nothing"):
        read_source(folder)


@pytest.mark.parametrize(
    ("layout", "writer", "needle"),
    [
        (Layout.PLAIN, write_drizzle_folder, "layout plain, but the folder has drizzle-kit's"),
        (Layout.DRIZZLE, write_plain_folder, "layout drizzle, but there is no meta/_journal"),
        (Layout.PLAIN, write_v1_folder, "drizzle-kit 1.0 migration folder"),
        (Layout.DRIZZLE_V1, write_plain_folder, "name does not match the drizzle-v1 layout"),
    ],
)
def test_layout_contradicting_the_folder(
    tmp_path: Path, layout: Layout, writer, needle: str
) -> None:
    writer(tmp_path, ["SELECT 1;"])
    with pytest.raises(SourceError, match=re.escape(needle)):
        read_source(tmp_path, layout)


def test_drizzle_v1_over_its_configmap_encoding_mounted_as_a_folder(tmp_path: Path) -> None:
    """The runner's Job mounts a v1 ConfigMap (`<folder>.sql` keys) as flat files."""
    (tmp_path / "20251101000000_init.sql").write_text("SELECT 1;")
    assert read_source(tmp_path, Layout.DRIZZLE_V1).migrations[0].name == "20251101000000_init"


def test_v1_folders_beside_a_plain_named_file_are_not_read_as_plain(tmp_path: Path) -> None:
    write_v1_folder(tmp_path, ["SELECT 1;"])
    (tmp_path / "0001_stray.sql").write_text("SELECT 2;")
    with pytest.raises(SourceError, match="does not match the drizzle-v1 layout"):
        read_source(tmp_path)


def test_explicit_layout_that_matches_is_accepted(tmp_path: Path) -> None:
    for layout, writer in (
        (Layout.DRIZZLE, write_drizzle_folder),
        (Layout.DRIZZLE_V1, write_v1_folder),
        (Layout.PLAIN, write_plain_folder),
    ):
        folder = writer(tmp_path / layout.value, ["SELECT 1;"])
        assert read_source(folder, layout).layout is layout


def test_files_drizzle_never_reads_are_listed(tmp_path: Path) -> None:
    folder = write_drizzle_folder(tmp_path / "s", ["SELECT 1;"])
    (folder / "0001_lost_backfill.sql").write_text("UPDATE t SET v = 1;")
    source = read_source(folder)
    assert [m.name for m in source.migrations] == ["0000_m0"]
    assert source.unlisted == (str(folder / "0001_lost_backfill.sql"),)
    v1 = write_v1_folder(tmp_path / "v", ["SELECT 1;"])
    (v1 / "20251101000009_empty").mkdir()
    assert read_source(v1).unlisted == (str(v1 / "20251101000009_empty"),)
