"""`make demo` runs as a new user runs it: its own process, end to end.

The cluster demo starts its own control plane, PostgreSQL and operator (it cannot share the
session's cluster), so this is the slowest check of the README's first command.
"""

from __future__ import annotations

import pytest

from tests.helpers import assert_no_secret, run_example
from tests.pgserver import PASSWORD


@pytest.mark.e2e
def test_cluster_demo_reconciles_the_quickstart_to_complete() -> None:
    output = run_example("examples.cluster_demo", timeout=900)
    assert "AwaitingApproval" in output
    assert "Complete   0004_projects_slug_not_null   0" in output
    assert "BackupTaken" in output and "the backup" in output
    assert_no_secret(output, PASSWORD)
