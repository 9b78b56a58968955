"""`make demo-cli` runs as a new user runs it: its own process, PostgreSQL, the quickstart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.pgserver import PASSWORD

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_cli_demo_applies_the_quickstart() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "2000 rows, 0 without a slug" in output
    assert PASSWORD not in output
