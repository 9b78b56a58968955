from __future__ import annotations

import pytest

from pgshift.errors import OverridesError
from pgshift.safety.directives import merge, parse_overrides
from pgshift.safety.model import Directives, Phase


def test_parse_overrides_reads_every_setting() -> None:
    got = parse_overrides(
        {
            "0007_drop_legacy": {"phase": "contract", "allow": ["ban-drop-column"]},
            "0008_fill": {"backfill": {"key": "uid"}, "noTransaction": False, "rewrite": False},
            "0009_plain": {"backfill": True},
        },
        "spec.overrides",
    )
    assert got["0007_drop_legacy"] == Directives(phase=Phase.CONTRACT,
                                                 allow=frozenset({"ban-drop-column"}))
    assert got["0008_fill"] == Directives(backfill=True, backfill_key="uid", rewrite=False)
    assert got["0009_plain"] == Directives(backfill=True)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"0001_x": {"phases": "expand"}}, "spec.overrides: 0001_x: unknown key phases"),
        ({"0001_x": {"phase": "soon"}}, "0001_x: phase must be one of"),
        ({"0001_x": {"allow": ["no-such-rule"]}}, "0001_x: allow names unknown rule no-such-rule"),
        ({"0001_x": {"backfill": {"column": "id"}}}, "0001_x: unknown key backfill.column"),
        ({"0001_x": {"rewrite": "no"}}, "0001_x: rewrite must be true or false"),
        ({"0001_x": ["phase"]}, "0001_x: expected a mapping"),
    ],
)
def test_parse_overrides_names_migration_and_key(data: dict, fragment: str) -> None:
    with pytest.raises(OverridesError) as exc:
        parse_overrides(data, "spec.overrides")
    assert fragment in exc.value.message


def test_merge_override_wins_phase_and_switches_add_up() -> None:
    inline = Directives(phase=Phase.EXPAND, allow=frozenset({"ban-drop-table"}))
    override = Directives(phase=Phase.CONTRACT, allow=frozenset({"ban-drop-column"}),
                          rewrite=False)
    got = merge(inline, override)
    assert got.phase is Phase.CONTRACT
    assert got.allow == {"ban-drop-table", "ban-drop-column"}
    assert got.rewrite is False
    assert merge(inline, None) is inline
