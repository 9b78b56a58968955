"""`make demo-cli` runs as a new user runs it: its own process, PostgreSQL, the quickstart."""

from __future__ import annotations

import pytest

from tests.helpers import assert_no_secret, run_example
from tests.pgserver import PASSWORD


@pytest.mark.integration
def test_cli_demo_applies_the_quickstart() -> None:
    output = run_example("examples.demo", timeout=300)
    assert "2000 rows, 0 without a slug" in output
    assert_no_secret(output, PASSWORD)
