"""What a statement's `(OPTION [value], ...)` list says, read as PostgreSQL reads it.

`VACUUM (FULL FALSE)` is a plain VACUUM and `REINDEX (CONCURRENTLY FALSE)` a blocking REINDEX:
an option's value counts, not its presence. PostgreSQL (`defGetBoolean`) takes no value as
true, `true`/`on`/`1` as true and `false`/`off`/`0` as false, and refuses anything else; such
a statement fails, so pgshift takes it as on (the answer that reports more, never less).
"""

from __future__ import annotations

from collections.abc import Iterable

from pglast import ast

_FALSE = frozenset({"false", "off", "0"})


def option_value(option: ast.DefElem) -> bool:
    arg = option.arg
    if arg is None:
        return True
    if isinstance(arg, ast.Integer):
        return arg.ival != 0
    if isinstance(arg, ast.Boolean):
        return bool(arg.boolval)
    text = getattr(arg, "sval", None) or getattr(arg, "fval", None)
    return not (isinstance(text, str) and text.lower() in _FALSE)


def option_on(options: Iterable[object] | None, name: str) -> bool:
    """Is option `name` given and on? The last mention wins, as in PostgreSQL's loops."""
    on = False
    for option in options or ():
        if isinstance(option, ast.DefElem) and option.defname == name:
            on = option_value(option)
    return on
