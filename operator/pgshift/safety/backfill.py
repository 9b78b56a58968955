"""Which UPDATEs run as keyset-batched backfills, and the `Backfill` the engine runs them from.

An UPDATE is batched automatically only when re-running it is harmless *and* it stops matching
the rows it changed — a guard such as `SET c = ... WHERE c IS NULL`. Then a killed run resumes at
its checkpoint, and a final pass catches rows that old code wrote while the walk ran. Anything
else runs as written unless `-- pgshift:backfill` says it may be batched (then the engine walks
the keys once and runs no final pass: a guard that never becomes false would never finish).
"""

from __future__ import annotations

from pglast import ast
from pglast.enums import A_Expr_Kind, BoolExprType, NullTestType

from pgshift.safety.model import Backfill
from pgshift.safety.names import relation_name, render
from pgshift.safety.nodes import items, relation, required


def batchable(node: ast.UpdateStmt) -> bool:
    """One table, no FROM / RETURNING / WITH / WHERE CURRENT OF: the engine can add a key range.

    An alias (`UPDATE t AS x ... WHERE x.a IS NULL`) is refused too: `Backfill` carries the
    table, not the alias, so the engine's `UPDATE t SET ... WHERE (x.a IS NULL)` would not parse.
    """
    return not (
        relation(node).alias is not None
        or node.fromClause
        or node.returningClause
        or node.withClause
        or isinstance(node.whereClause, ast.CurrentOfExpr)
    )


def backfill_for(node: ast.UpdateStmt, key: str | None) -> Backfill:
    return Backfill(
        table=relation_name(relation(node)),
        key=key,
        set_sql=set_list(node),
        where_sql=render(node.whereClause) if node.whereClause is not None else None,
        idempotent=idempotent(node),
        columns=tuple(required(t.name, "SET's column") for t in _targets(node)),
    )


def set_list(node: ast.UpdateStmt) -> str:
    """`"slug" = lower(...)`: the SET list as SQL, re-rendered by PostgreSQL's grammar."""
    # the printer only prints a SET list as part of an UPDATE: print one and cut its head off.
    probe = ast.UpdateStmt(relation=ast.RangeVar(relname="t", inh=True), targetList=node.targetList)
    text = render(probe)
    head = "UPDATE t SET "
    assert text.startswith(head), text
    return text[len(head) :]


def _targets(node: ast.UpdateStmt) -> list[ast.ResTarget]:
    return [t for t in node.targetList or () if isinstance(t, ast.ResTarget)]


def idempotent(node: ast.UpdateStmt) -> bool:
    """Does the WHERE stop matching every row the SET changes? Read from the tree, never text."""
    if node.whereClause is None or not batchable(node):
        return False
    values: dict[str, ast.Node] = {}
    for target in _targets(node):
        if target.indirection or isinstance(target.val, ast.MultiAssignRef):
            continue  # arrays, fields, (a, b) = (...): too clever to reason about
        values[required(target.name, "SET's column")] = required(target.val, "SET's value")
    return any(_excludes_updated(c, values) for c in _conjuncts(node.whereClause))


def _conjuncts(expr: ast.Node) -> list[ast.Node]:
    if isinstance(expr, ast.BoolExpr) and expr.boolop == BoolExprType.AND_EXPR:
        return [c for arg in items(expr.args) for c in _conjuncts(arg)]
    return [expr]


def _column(expr: object) -> str | None:
    """The column an expression names, if it is a plain column reference."""
    if isinstance(expr, ast.ColumnRef):
        last = items(expr.fields)[-1]
        if isinstance(last, ast.String):
            return last.sval
    return None


def _is_null_const(expr: ast.Node) -> bool:
    return isinstance(expr, ast.A_Const) and bool(expr.isnull)


def _excludes_updated(cond: ast.Node, values: dict[str, ast.Node]) -> bool:
    # WHERE c IS NULL with SET c = <not NULL>: a changed row is no longer NULL... unless the
    # value computes to NULL, and then the row is unchanged, so running it again changes nothing.
    if isinstance(cond, ast.NullTest) and cond.nulltesttype == NullTestType.IS_NULL:
        col = _column(cond.arg)
        return col in values and not _is_null_const(values[col])
    negated = False
    if isinstance(cond, ast.BoolExpr) and cond.boolop == BoolExprType.NOT_EXPR:
        cond, negated = items(cond.args)[0], True
    if not isinstance(cond, ast.A_Expr) or cond.lexpr is None or cond.rexpr is None:
        return False
    op = cond.name[-1].sval if cond.name else ""
    for side, other in ((cond.lexpr, cond.rexpr), (cond.rexpr, cond.lexpr)):
        col = _column(side)
        if col is None or col not in values or not isinstance(other, ast.Node):
            continue  # `other` is a list only for IN (...), which proves nothing here
        value = values[col]
        differs = (
            (cond.kind == A_Expr_Kind.AEXPR_OP and op in ("<>", "!=") and not negated)
            or (cond.kind == A_Expr_Kind.AEXPR_OP and op == "=" and negated)
            or (cond.kind == A_Expr_Kind.AEXPR_DISTINCT and not negated)
        )
        # WHERE c <> X / c IS DISTINCT FROM X with SET c = X: a changed row equals X afterwards.
        if differs and render(value) == render(other):
            return True
        # WHERE c = 'old' with SET c = 'new' (two different constants): changed rows hold 'new'.
        if (cond.kind == A_Expr_Kind.AEXPR_OP and op == "=" and not negated
                and isinstance(other, ast.A_Const) and isinstance(value, ast.A_Const)
                and not other.isnull and not value.isnull and render(value) != render(other)):
            return True
    return False
