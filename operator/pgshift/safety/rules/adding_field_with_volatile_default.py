"""ADD COLUMN with a volatile default rewrites the whole table under ACCESS EXCLUSIVE."""

from __future__ import annotations

from collections.abc import Iterator

from pglast.enums import AlterTableType, ConstrType

from pgshift.safety.model import Severity
from pgshift.safety.rules.base import Rule, Subject, Violation, alter_cmds, table_of
from pgshift.safety.volatility import SERIAL, volatile_calls


def check(s: Subject) -> Iterator[Violation]:
    if not s.on_existing:
        return
    for cmd in alter_cmds(s.node):
        if cmd.subtype != AlterTableType.AT_AddColumn:
            continue
        col, table = cmd.def_.colname, table_of(s.node)
        type_name = cmd.def_.typeName.names[-1].sval.lower() if cmd.def_.typeName else ""
        reason = ""
        if type_name in SERIAL:
            reason = f"{type_name} fills every row from a sequence (nextval() is volatile)"
        for con in cmd.def_.constraints or ():
            if con.contype == ConstrType.CONSTR_DEFAULT and con.raw_expr is not None:
                calls = volatile_calls(con.raw_expr)
                if calls:
                    reason = f"the default calls {calls[0]}(), which is volatile"
            elif con.contype == ConstrType.CONSTR_IDENTITY:
                reason = "an identity column fills every row from a sequence"
            elif con.contype == ConstrType.CONSTR_GENERATED:
                reason = "a stored generated column is computed for every row"
        if reason:
            yield Violation(
                f"ADD COLUMN {col}: {reason}, so PostgreSQL rewrites all of {table} under an "
                "ACCESS EXCLUSIVE lock: reads and writes wait",
                f"ADD COLUMN {col} without the default; ALTER COLUMN {col} SET DEFAULT ...; "
                "backfill existing rows in batches (pgshift rewrites a plain defaulted column so "
                "unless rewrite=false)",
            )


RULE = Rule(
    "adding-field-with-volatile-default", Severity.ERROR,
    "add columns whose default rewrites the table in steps", check,
)
