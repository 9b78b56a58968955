"""What a ConfigMap source's problems say (reconcile.judge_source, pure)."""

from __future__ import annotations

from pgshift.controller.reconcile import judge_source
from pgshift.controller.status import REASONS, Reason


def test_source_too_large_points_to_server_side_apply_and_image_sources() -> None:
    data = {"0001_big.sql": "SELECT 1;\n" * 110_000}  # over 1 MiB
    state = judge_source("shop", "src", data, "plain")
    assert state.problem == Reason.SOURCE_TOO_LARGE.value
    assert REASONS[Reason.SOURCE_TOO_LARGE].stalled
    assert "kubectl apply --server-side" in state.message
    assert "256 KiB" in state.message and "kubectl apply -k DIR --server-side" in state.message
    assert "spec.source.image" in state.message


def test_missing_and_fine_sources() -> None:
    assert judge_source("shop", "src", None, "plain").problem == Reason.SOURCE_NOT_FOUND.value
    fine = judge_source("shop", "src", {"0001_a.sql": "CREATE TABLE a (id int);\n"}, "plain")
    assert fine.problem == "" and fine.digest.startswith("sha256:")
