"""`ADD CONSTRAINT pk PRIMARY KEY (cols)` -> NOT NULL recipes, a unique index, USING INDEX.

    -- for each key column: the set-not-null recipe (CHECK NOT VALID, VALIDATE, SET NOT NULL,
    -- DROP CHECK), so the primary key finds the columns NOT NULL and scans nothing
    CREATE UNIQUE INDEX CONCURRENTLY pk ON t (cols)
    ALTER TABLE t ADD CONSTRAINT pk PRIMARY KEY USING INDEX pk

An unnamed primary key gets PostgreSQL's own name, `<table>_pkey`, when that fits in 63 bytes
(otherwise it is left alone).
"""

from __future__ import annotations

from pglast import ast
from pglast.enums import AlterTableType, ConstrType

from pgshift.safety.model import LockClass, TxMode
from pgshift.safety.names import MAX_IDENTIFIER_BYTES, index_name
from pgshift.safety.nodes import constraint_of, items, relation
from pgshift.safety.rewrites import set_not_null
from pgshift.safety.rewrites.base import Functions, Part, alter, single_cmd
from pgshift.safety.rewrites.unique_using_index import index_on

ID = "primary-key-using-index"


def rewrite(node: ast.Node, functions: Functions | None = None) -> list[Part] | None:
    found = single_cmd(node)
    if found is None or found[1].subtype != AlterTableType.AT_AddConstraint:
        return None
    stmt, cmd = found
    con = constraint_of(cmd)
    if con.contype != ConstrType.CONSTR_PRIMARY or con.indexname or not con.keys:
        return None
    if getattr(con, "without_overlaps", False) or con.including:
        return None
    rv = relation(stmt)
    name = con.conname or f"{rv.relname}_pkey"
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        return None
    parts: list[Part] = []
    for key in items(con.keys):
        parts.extend(set_not_null.recipe(rv, key.sval))
    using = ast.Constraint(contype=ConstrType.CONSTR_PRIMARY, conname=name, indexname=name,
                           deferrable=con.deferrable, initdeferred=con.initdeferred)
    parts += [
        Part(index_on(rv, name, con), TxMode.AUTOCOMMIT, LockClass.WEAK,
             f"create unique index {name} concurrently on {rv.relname}",
             index_name=index_name(rv, name), index_unique=True),
        Part(alter(rv, ast.AlterTableCmd(subtype=AlterTableType.AT_AddConstraint, def_=using)),
             TxMode.TRANSACTION, LockClass.STRONG,
             f"add primary key {name} using index on {rv.relname}"),
    ]
    return parts
