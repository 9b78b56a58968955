"""Names that name nothing (issue 9): the pure check the CLI and the controller share."""

from __future__ import annotations

import pytest

from pgshift.contract.summary import StopReason
from pgshift.engine.plan import check_names, select
from pgshift.engine.state import compare
from pgshift.engine.tracking import Row
from pgshift.errors import UnknownMigration, UnknownStep
from pgshift.migrations.names import unmatched_names
from pgshift.safety.model import Analysis, Phase
from pgshift.settings import DestructivePolicy, Selection
from tests.unit.engine.test_plan import _plan, st, stable


def test_unmatched_names_by_migration_and_step_key() -> None:
    src = stable("a", "b")
    m0, m1 = src.migrations
    keys = {m1.name: [f"{m1.hash[:12]}-0", f"{m1.hash[:12]}-1"]}

    def keys_of(m):  # m0 is "applied": its steps are not known, any key of its hash matches
        return keys.get(m.name)

    named = [
        ("--approve", m0.name),
        ("--approve", "*"),
        ("--approve", "*@3"),
        ("--stop-before", f"{m0.hash[:12]}-9"),
        ("--stop-before", f"{m1.hash[:12]}-1"),
        ("--stop-before", f"{m1.hash[:12]}-2"),
        ("--stop-before", f"{m1.hash[:12]}.abcdef-0"),
        ("--approve", "0009_nope"),
        ("--stop-before", "0123456789ab-0"),
    ]
    out = unmatched_names(src, named, keys_of)
    assert [(u.option, u.name, u.is_step_key) for u in out] == [
        ("--stop-before", f"{m1.hash[:12]}-2", True),
        ("--stop-before", f"{m1.hash[:12]}.abcdef-0", True),
        ("--approve", "0009_nope", False),
        ("--stop-before", "0123456789ab-0", True),
    ]
    assert out[0].instead == tuple(keys[m1.name])
    assert "that file's steps are" in out[0].message("dir")
    # options that take migration names only never read a name as a step key
    assert unmatched_names(src, [("--target", f"{m1.hash[:12]}-0")], step_keys=False)[0].message(
        "dir"
    ) == f"--target {m1.hash[:12]}-0: no migration of that name in dir"


def test_check_names_consumes_names_of_applied_files_and_raises_the_first_unknown() -> None:
    src = stable("a", "b")
    m0, m1 = src.migrations
    state = compare(src, [Row(id=1, hash=m0.hash, created_at=m0.when)])
    asked: list[str] = []

    def keys_of(m):
        asked.append(m.name)
        return [f"{m.hash[:12]}-0"]

    check_names(src, state, Selection(stop_before=f"{m0.hash[:12]}-5"), keys_of)
    assert asked == []  # applied: consumed without cutting it
    with pytest.raises(UnknownStep, match=r"--stop-before .*-5: no step with that key"):
        check_names(src, state, Selection(stop_before=f"{m1.hash[:12]}-5"), keys_of)
    with pytest.raises(UnknownMigration, match="--approve 0002_x"):
        check_names(src, state, Selection(approve=frozenset({"0002_x", "*"})), keys_of)
    with pytest.raises(UnknownMigration, match="--overrides 0003_y"):
        check_names(src, state, Selection(), keys_of, overrides=["0003_y"])


def test_stop_before_a_migration_and_the_wildcard_approval() -> None:
    src = stable("a", "b")
    p = _plan(
        src,
        [Analysis((st("a"),)), Analysis((st("b", phase=Phase.CONTRACT, destructive=True),))],
    )
    run, stop = select(p, Selection(stop_before="0001_m1"))
    assert len(run) == 1 and stop.reason is StopReason.STOP_BEFORE
    run, stop = select(
        p, Selection(destructive=DestructivePolicy.REQUIRE_APPROVAL, approve=frozenset({"*"}))
    )
    assert len(run) == 2 and stop.reason is StopReason.DONE
