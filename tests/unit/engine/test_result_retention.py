import json

from pgshift.backup.retention import to_prune
from pgshift.engine.result import Failure, StepDone, Summary, bounded_json


def test_summary_stays_under_4k_and_keeps_the_essentials() -> None:
    s = Summary(
        command="apply",
        ok=False,
        pending=[f"{i:04d}_migration_with_a_long_name" for i in range(500)],
        pending_count=500,
        applied=[StepDone(f"{i:012x}-0", f"m{i}", "expand", 3) for i in range(300)],
        failure=Failure(
            "m1",
            "abc-0",
            "x" * 5000,
            3,
            "23505",
            "duplicate key " * 100,
            "detail " * 300,
            "hint",
            False,
        ),
    )
    text = bounded_json(s.as_dict())
    assert len(text.encode()) <= 4096
    data = json.loads(text)
    assert data["truncated"] is True and data["pendingCount"] == 500
    assert data["failure"]["sqlstate"] == "23505"


def test_small_summary_is_untouched() -> None:
    s = Summary(command="plan", pending=["a"], pending_count=1)
    assert json.loads(s.bounded_json()) == s.as_dict()


def test_retention_keeps_the_newest() -> None:
    dumps = [("a.dump", 1.0), ("b.dump", 3.0), ("c.dump", 2.0), ("d.dump", 4.0)]
    assert to_prune(dumps, 2) == ["a.dump", "c.dump"]
    assert to_prune(dumps, 10) == []
    assert to_prune(dumps, 0) == []
    assert to_prune([("x.dump", 1.0), ("y.dump", 1.0)], 1) == ["x.dump"]
