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
    """Run `python -m module`; past the timeout it gets SIGTERM, so it stops what it started."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        output, _ = proc.communicate(timeout=60)
        pytest.fail(f"{module} took over {timeout} s:\n{output[-4000:]}")
    assert proc.returncode == 0, output[-4000:]
    assert PASSWORD not in output
    return output


@pytest.mark.e2e
def test_cluster_demo_reconciles_the_quickstart_to_complete() -> None:
    output = _run_demo("examples.cluster_demo", timeout=900)
    assert "AwaitingApproval" in output
    assert "Complete   0004_projects_slug_not_null   0" in output
    assert "BackupTaken" in output and "the backup" in output

