"""The CLI's flags default to the settings dataclasses: one source for the runner's defaults."""

from __future__ import annotations

import pytest

from pgshift import cli, settings


@pytest.mark.parametrize("verb", ["plan", "apply", "status", "baseline", "mark-applied"])
def test_a_run_without_flags_gets_the_settings_defaults(verb: str) -> None:
    extra = {"baseline": ["--up-to", "x"], "mark-applied": ["x"]}.get(verb, [])
    run = cli.settings_from(cli.build_parser().parse_args([verb, *extra]))
    assert run == settings.RunSettings()


def test_flag_defaults_are_written_as_the_settings_hold_them() -> None:
    args = cli.build_parser().parse_args(["apply"])
    timeouts, backfill = settings.Timeouts(), settings.BackfillSettings()
    assert (args.lock_wait, args.lock_timeout) == ("5m", "2s")
    assert settings.parse_duration(args.lock_wait, "x") == timeouts.lock_wait
    assert settings.parse_duration(args.target_batch_time, "x") == backfill.target_batch_time
    assert args.destructive == settings.Selection().destructive.value
    backup = cli.build_parser().parse_args(["backup", "--to", "f.dump"])
    assert settings.parse_duration(backup.lock_wait, "x") == settings.DumpSettings().lock_wait


def test_format_duration_reads_back() -> None:
    for seconds in (0.0, 0.001, 0.2, 0.3, 1.5, 2.0, 60.0, 300.0, 3600.0, 86400.0):
        assert settings.parse_duration(settings.format_duration(seconds), "x") == seconds
    assert [settings.format_duration(s) for s in (0.0, 0.2, 2.0, 300.0, 5400.0)] == [
        "0s", "200ms", "2s", "5m", "90m",
    ]  # fmt: skip
