"""Down files: never migrations in any layout or ConfigMap form; in the digest, never in a hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgshift.errors import SourceError
from pgshift.migrations import Layout, read_mapping, read_source
from pgshift.migrations.reader import _flatten_folder
from tests.helpers import (
    write_down_files,
    write_drizzle_folder,
    write_plain_folder,
    write_v1_folder,
)

UPS = ["CREATE TABLE a (id int);", "CREATE TABLE b (id int);"]
WRITERS = {
    Layout.DRIZZLE: write_drizzle_folder,
    Layout.DRIZZLE_V1: write_v1_folder,
    Layout.PLAIN: write_plain_folder,
}


def _folder(tmp_path: Path, layout: Layout, *, downs: bool) -> Path:
    folder = WRITERS[layout](tmp_path / ("with" if downs else "without"), UPS)
    if downs:
        names = [m.name for m in read_source(folder).migrations]
        write_down_files(folder, {names[0]: "DROP TABLE a;", names[1]: "DROP TABLE b;"})
    return folder


@pytest.mark.parametrize("layout", list(WRITERS))
def test_down_files_are_never_migrations_in_a_folder(tmp_path: Path, layout: Layout) -> None:
    without = read_source(_folder(tmp_path, layout, downs=False))
    source = read_source(_folder(tmp_path, layout, downs=True))
    assert source.layout is layout
    assert [(m.name, m.when, m.hash) for m in source.migrations] == [
        (m.name, m.when, m.hash) for m in without.migrations
    ]
    assert source.unlisted == ()
    assert [(d.name, d.sql) for d in source.downs] == [
        (without.migrations[0].name, "DROP TABLE a;"),
        (without.migrations[1].name, "DROP TABLE b;"),
    ]
    assert source.down_of(without.migrations[1].name).path.endswith(  # type: ignore[union-attr]
        "down.sql"
    )
    # in the digest (the operator pins it), never in a migration's hash.
    assert source.digest != without.digest


@pytest.mark.parametrize("layout", list(WRITERS))
def test_down_files_are_never_migrations_in_a_configmap(tmp_path: Path, layout: Layout) -> None:
    """The ConfigMap form (flat keys, what `kustomize configMapGenerator` packs)."""
    files, _shown, _skipped = _flatten_folder(_folder(tmp_path, layout, downs=True))
    down_keys = sorted(k for k in files if k.endswith(".down.sql"))
    names = [m.name for m in read_source(_folder(tmp_path, layout, downs=False)).migrations]
    assert down_keys == [f"{n}.down.sql" for n in names]
    source = read_mapping(files, Layout.AUTO, origin="configmap:ns/m")
    assert source.layout is layout
    assert [m.name for m in source.migrations] == names
    assert [d.name for d in source.downs] == names
    assert read_mapping(files, layout).digest == source.digest


def test_a_down_file_without_its_migration_is_named() -> None:
    files = {"0001_a.sql": "SELECT 1;", "0002_b.down.sql": "SELECT 2;"}
    with pytest.raises(SourceError, match=r"0002_b\.down\.sql: a down file undoes the migration"):
        read_mapping(files, origin="src")


def test_a_source_of_down_files_only_has_no_migrations() -> None:
    with pytest.raises(SourceError, match="no migrations found"):
        read_mapping({"0001_a.down.sql": "SELECT 1;"})


def test_sources_without_down_files_keep_their_digest() -> None:
    source = read_mapping({"0001_a.sql": "SELECT 1;"})
    assert source.downs == ()
    import hashlib

    m = source.migrations[0]
    expected = hashlib.sha256(f"{m.name}\0{m.when}\0{m.hash}\n".encode()).hexdigest()
    assert source.digest == "sha256:" + expected
