"""`ADD CONSTRAINT c FOREIGN KEY/CHECK` -> `... NOT VALID`, then `VALIDATE CONSTRAINT c`.

ADD ... NOT VALID takes its lock only for a moment (new rows are checked from then on); VALIDATE
scans under SHARE UPDATE EXCLUSIVE, which blocks neither reads nor writes, and runs committed on
its own so the scan never holds the first statement's lock. Unnamed constraints are left alone:
PostgreSQL picks their name, and VALIDATE needs it (drizzle-kit always names them).
"""

from __future__ import annotations

from pglast import ast
from pglast.enums import AlterTableType, ConstrType

from pgshift.safety.model import LockClass, TxMode
from pgshift.safety.nodes import constraint_of, relation, relname
from pgshift.safety.rewrites.base import Functions, Part, copy, only_cmd, single_cmd, validate

ID = "not-valid-constraint"


def rewrite(node: ast.Node, functions: Functions | None = None) -> list[Part] | None:
    found = single_cmd(node)
    if found is None or found[1].subtype != AlterTableType.AT_AddConstraint:
        return None
    stmt, cmd = found
    con = constraint_of(cmd)
    if (con.contype not in (ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK)
            or con.skip_validation or not con.conname):
        return None
    added = copy(stmt)
    added_con = constraint_of(only_cmd(added))
    added_con.skip_validation = True
    added_con.initially_valid = False
    kind = "foreign key" if con.contype == ConstrType.CONSTR_FOREIGN else "check"
    rv = relation(stmt)
    table = relname(rv)
    return [
        Part(added, TxMode.TRANSACTION, LockClass.STRONG,
             f"add {kind} {con.conname} not valid on {table}"),
        Part(validate(rv, con.conname), TxMode.AUTOCOMMIT, LockClass.WEAK,
             f"validate constraint {con.conname} on {table}"),
    ]
