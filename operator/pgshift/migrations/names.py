"""Names that must name something: migration names and step keys given as options, approvals
or override keys. PURE, so the CLI and the controller decide alike.

A name matches when it is a migration of the source, or a step key (`<hash12>-<index>`,
`<hash12>.<6 hex>-<index>`, engine/steps.py `step_key`) of one of its files: for a pending file
one of the keys it is cut into under this run's settings, for a file already applied (or whose
steps the caller cannot tell) any key with its hash. A name of something already applied is
consumed silently: approvals stay in git after use. `*` and `*@<generation>` (the wildcard
approval) always match.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from pgshift.migrations.model import Migration, Source

STEP_KEY = re.compile(r"^(?P<hash>[0-9a-f]{12})(?:\.[0-9a-f]{6})?-(?P<index>\d+)$")

#: the step keys a pending migration is cut into; None when not known (applied, or the caller
#: has no plan of it): then a key with the file's hash matches.
KeysOf = Callable[[Migration], Collection[str] | None]


def _unknown_keys(_migration: Migration) -> Collection[str] | None:
    return None


@dataclass(frozen=True)
class Unmatched:
    """A name given as `option` that matches no migration or step of the source."""

    option: str
    name: str
    #: it has the form of a step key, and the option takes step keys.
    is_step_key: bool = False
    #: what the source has instead, for the message (the steps of the file the key's hash names).
    instead: tuple[str, ...] = ()

    def message(self, origin: str) -> str:
        where = origin or "the source"
        if self.is_step_key:
            text = f"{self.option} {self.name}: no step with that key in {where}"
            if self.instead:
                text += f" (that file's steps are {', '.join(self.instead)})"
            return text
        return f"{self.option} {self.name}: no migration of that name in {where}"


def unmatched_names(
    source: Source,
    named: Iterable[tuple[str, str]],
    keys_of: KeysOf = _unknown_keys,
    *,
    step_keys: bool = True,
) -> list[Unmatched]:
    """The `(option, name)` pairs that match nothing, in the order given. `step_keys=False`:
    the option takes migration names only (`--target`, overrides)."""
    out: list[Unmatched] = []
    by_hash: dict[str, list[Migration]] = {}
    for m in source.migrations:
        by_hash.setdefault(m.hash[:12], []).append(m)
    for option, name in named:
        if name == "*" or name.startswith("*@") or name in source.names:
            continue
        key = STEP_KEY.match(name) if step_keys else None
        if key is None:
            out.append(Unmatched(option, name))
            continue
        instead: list[str] = []
        matched = False
        for m in by_hash.get(key.group("hash"), []):
            keys = keys_of(m)
            if keys is None or name in keys:
                matched = True
                break
            instead.extend(keys)
        if not matched:
            out.append(Unmatched(option, name, True, tuple(instead)))
    return out
