"""`make demo` runs as a new user runs it: its own process, end to end.

The cluster demo starts its own control plane, PostgreSQL and operator (it cannot share the
session's cluster), so this is the slowest check of the README's first command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.pgserver import PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def _run_demo(module: str, timeout: float) -> str:
    done = subprocess.run(
        [sys.executable, "-m", module],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert PASSWORD not in output
    return output


@pytest.mark.e2e
def test_cluster_demo_reconciles_the_quickstart_to_complete() -> None:
    output = _run_demo("examples.cluster_demo", timeout=600)
    assert "AwaitingApproval" in output
    assert "Complete   0004_projects_slug_not_null   0" in output
    assert "BackupTaken" in output and "the backup" in output

