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
from pgshift.safety.rewrites.base import Functions, Part, copy, single_cmd, validate

ID = "not-valid-constraint"


def rewrite(node: ast.Node, functions: Functions | None = None) -> list[Part] | None:
    cmd = single_cmd(node)
    if cmd is None or cmd.subtype != AlterTableType.AT_AddConstraint:
        return None
    con = cmd.def_
    if (con.contype not in (ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK)
            or con.skip_validation or not con.conname):
        return None
    added = copy(node)
    added.cmds[0].def_.skip_validation = True
    added.cmds[0].def_.initially_valid = False
    kind = "foreign key" if con.contype == ConstrType.CONSTR_FOREIGN else "check"
    table = node.relation.relname
    return [
        Part(added, TxMode.TRANSACTION, LockClass.STRONG,
             f"add {kind} {con.conname} not valid on {table}"),
        Part(validate(node.relation, con.conname), TxMode.AUTOCOMMIT, LockClass.WEAK,
             f"validate constraint {con.conname} on {table}"),
    ]
