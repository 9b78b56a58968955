"""safety is PURE: importing and running it loads no database, Kubernetes or operator library."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from pgshift.safety import analyze
from tests.unit.safety.helpers import KEY_CASE, migration
analyze(migration(KEY_CASE))
loaded = sorted(m for m in ("psycopg", "kopf", "kubernetes") if m in sys.modules)
print(",".join(loaded))
"""


def test_safety_loads_no_network_library() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
