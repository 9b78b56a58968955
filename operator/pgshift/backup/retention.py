"""Which dumps to prune. PURE: names and times in, names out."""

from __future__ import annotations

from collections.abc import Iterable


def to_prune(dumps: Iterable[tuple[str, float]], keep: int) -> list[str]:
    """Keep the `keep` newest dumps (by time, then name: a tie never prunes the later name);
    return the others, oldest first. `keep` < 1 keeps everything: pruning the dump just taken
    would defeat the backup."""
    if keep < 1:
        return []
    ordered = sorted(dumps, key=lambda d: (d[1], d[0]))
    return [name for name, _ in ordered[: max(0, len(ordered) - keep)]]
