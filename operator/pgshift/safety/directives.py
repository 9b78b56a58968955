"""`-- pgshift:` comment directives and `spec.overrides`, both read into `Directives`.

A directive comment holds one or more settings separated by spaces:

    -- pgshift:phase=contract
    -- pgshift:no-transaction
    -- pgshift:backfill key=id
    -- pgshift:allow=ban-drop-column,renaming-column
    -- pgshift:rewrite=false

Anything else after `pgshift:` is an error: a misspelt directive silently ignored would run a
statement in a way its author did not ask for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pgshift.errors import DirectiveError, OverridesError
from pgshift.safety.model import Directives, Phase

#: the marker; case-insensitive so `-- PGSHIFT:` is read (and checked) rather than ignored.
_MARKER = re.compile(r"^--\s*pgshift\s*:\s*(?P<body>.*)$", re.IGNORECASE | re.DOTALL)
_PHASES = ", ".join(p.value for p in Phase)


def is_directive_comment(comment: str) -> bool:
    return _MARKER.match(comment.strip()) is not None


def parse_directive_comment(comment: str, where: str) -> Directives:
    """Read one `-- pgshift:...` comment; `where` is "path:line" for messages."""
    match = _MARKER.match(comment.strip())
    if match is None:
        return Directives()
    # `allow=a, b` reads as `allow=a,b`: a space after a comma is not a new directive.
    words = re.sub(r"\s*,\s*", ",", match.group("body")).split()
    if not words:
        raise DirectiveError(f"{where}: empty directive {comment.strip()!r}")
    result = Directives()
    i = 0
    while i < len(words):
        word = words[i]
        name, _, value = word.partition("=")
        name = name.lower()
        if name == "phase":
            result = replace(result, phase=_phase(value, where, word))
        elif name == "no-transaction" and not value:
            result = replace(result, no_transaction=True)
        elif name == "backfill" and not value:
            result = replace(result, backfill=True)
            # `backfill key=COL`: the key belongs to this directive, not a word of its own.
            if i + 1 < len(words) and words[i + 1].lower().startswith("key="):
                key = words[i + 1].partition("=")[2]
                if not key:
                    raise DirectiveError(f"{where}: directive {words[i + 1]!r} needs a column")
                result = replace(result, backfill_key=key)
                i += 1
        elif name == "allow":
            result = replace(result, allow=result.allow | _rules(value, where, word))
        elif name == "rewrite":
            result = replace(result, rewrite=_bool(value, where, word))
        else:
            raise DirectiveError(f"{where}: unknown directive {word!r}")
        i += 1
    return result


def _phase(value: str, where: str, word: str) -> Phase:
    try:
        return Phase(value.lower())
    except ValueError:
        raise DirectiveError(
            f"{where}: directive {word!r}: phase must be one of {_PHASES}"
        ) from None


def _bool(value: str, where: str, word: str) -> bool:
    if value.lower() in ("true", "yes", "on"):
        return True
    if value.lower() in ("false", "no", "off"):
        return False
    raise DirectiveError(f"{where}: directive {word!r}: expected true or false")


def _rules(value: str, where: str, word: str) -> frozenset[str]:
    from pgshift.safety.rules import RULES  # the registry imports model only; no cycle at load

    names = frozenset(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise DirectiveError(f"{where}: directive {word!r} names no rule")
    unknown = sorted(n for n in names if n not in RULES)
    if unknown:
        raise DirectiveError(f"{where}: directive {word!r}: unknown rule {', '.join(unknown)}")
    return names


def merge(inline: Directives, override: Directives | None) -> Directives:
    """Combine a statement's own directives with its migration's override.

    The override wins for the phase (it is the later, deliberate decision, often for a file
    whose text must not change); switches combine so that either side can ask for the safer or
    the explicit behaviour: allow lists add up, `no-transaction` and `backfill` from either side
    apply, and `rewrite=false` from either side turns rewriting off.
    """
    if override is None:
        return inline
    return Directives(
        phase=override.phase or inline.phase,
        no_transaction=inline.no_transaction or override.no_transaction,
        backfill=inline.backfill or override.backfill,
        backfill_key=override.backfill_key or inline.backfill_key,
        allow=inline.allow | override.allow,
        rewrite=inline.rewrite and override.rewrite,
    )


def combine(first: Directives, second: Directives) -> Directives:
    """Two directive comments before the same statement: both apply; the later one wins a phase."""
    return Directives(
        phase=second.phase or first.phase,
        no_transaction=first.no_transaction or second.no_transaction,
        backfill=first.backfill or second.backfill,
        backfill_key=second.backfill_key or first.backfill_key,
        allow=first.allow | second.allow,
        rewrite=first.rewrite and second.rewrite,
    )


_OVERRIDE_KEYS = ("phase", "noTransaction", "backfill", "allow", "rewrite")


def parse_overrides(data: Mapping[str, Any] | None, origin: str) -> dict[str, Directives]:
    """Read `spec.overrides` / `--overrides` into directives per migration name.

    Shape: `{name: {phase, noTransaction, backfill, allow, rewrite}}`.

    `backfill` is `true`, `{}` or `{key: COL}`. `origin` names the source in messages
    (`spec.overrides`, or the overrides file's path).
    """
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise OverridesError(f"{origin}: expected a mapping of migration name to settings")
    result: dict[str, Directives] = {}
    for name, settings in data.items():
        label = f"{origin}: {name}"
        if settings is None:
            settings = {}
        if not isinstance(settings, Mapping):
            raise OverridesError(f"{label}: expected a mapping of settings")
        unknown = sorted(str(k) for k in settings if k not in _OVERRIDE_KEYS)
        if unknown:
            raise OverridesError(
                f"{label}: unknown key {', '.join(unknown)} (known: {', '.join(_OVERRIDE_KEYS)})"
            )
        result[str(name)] = _override(settings, label)
    return result


def _override(settings: Mapping[str, Any], label: str) -> Directives:
    d = Directives()
    if settings.get("phase") is not None:
        try:
            d = replace(d, phase=Phase(str(settings["phase"]).lower()))
        except ValueError:
            raise OverridesError(f"{label}: phase must be one of {_PHASES}") from None
    if "noTransaction" in settings:
        no_tx = _override_bool(settings["noTransaction"], label, "noTransaction")
        d = replace(d, no_transaction=no_tx)
    if "backfill" in settings:
        d = _override_backfill(d, settings["backfill"], label)
    if "allow" in settings:
        d = replace(d, allow=_override_allow(settings["allow"], label))
    if "rewrite" in settings:
        d = replace(d, rewrite=_override_bool(settings["rewrite"], label, "rewrite"))
    return d


def _override_bool(value: Any, label: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise OverridesError(f"{label}: {key} must be true or false")
    return value


def _override_backfill(d: Directives, value: Any, label: str) -> Directives:
    if value is True or value == {}:
        return replace(d, backfill=True)
    if value is False or value is None:
        return d
    if isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if k != "key")
        if unknown:
            raise OverridesError(f"{label}: unknown key backfill.{', backfill.'.join(unknown)}")
        key = value.get("key")
        if key is not None and (not isinstance(key, str) or not key):
            raise OverridesError(f"{label}: backfill.key must be a column name")
        return replace(d, backfill=True, backfill_key=key)
    raise OverridesError(f"{label}: backfill must be true or {{key: COLUMN}}")


def _override_allow(value: Any, label: str) -> frozenset[str]:
    from pgshift.safety.rules import RULES

    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise OverridesError(f"{label}: allow must be a list of rule ids")
    unknown = sorted(v for v in value if v not in RULES)
    if unknown:
        raise OverridesError(f"{label}: allow names unknown rule {', '.join(unknown)}")
    return frozenset(value)
