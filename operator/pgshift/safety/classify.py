"""Classify one parsed statement: phase, transaction mode, lock class, destructive, tables.

Everything is read from the parse tree. The rules of thumb (docs: /work/shared/notes/
zero-downtime.md): additive changes that old application code tolerates are **expand**; data
changes over existing rows are **backfill**; whatever breaks old code, loses data, or needs all
rows right is **contract**, and so is anything pgshift cannot see into (DO blocks). Statements
on a table created earlier in the same file touch an empty, private table: they are expand and
take no lock that matters.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pglast import ast
from pglast.enums import AlterTableType as AT
from pglast.enums import ConstrType, ObjectType

from pgshift.safety.context import Context
from pgshift.safety.model import LockClass, Phase, TxMode
from pgshift.safety.names import index_name, relation_name, render, table_key, written
from pgshift.safety.nodes import (
    child,
    column_of,
    constraint_of,
    items,
    relation,
    required,
    subtype,
)
from pgshift.safety.options import option_on
from pgshift.safety.plpgsql import guarded_statements

E, B, C = Phase.EXPAND, Phase.BACKFILL, Phase.CONTRACT
TX, AUTO = TxMode.TRANSACTION, TxMode.AUTOCOMMIT
WEAK, STRONG = LockClass.WEAK, LockClass.STRONG


@dataclass(frozen=True)
class Classification:
    phase: Phase
    tx: TxMode
    lock: LockClass
    destructive: bool
    summary: str
    tables: tuple[str, ...] = ()
    index_name: str | None = None
    #: table keys this statement creates.
    creates: tuple[str, ...] = ()
    #: table keys to treat as existing from now on (CREATE TABLE IF NOT EXISTS).
    assumes: tuple[str, ...] = ()
    #: the statement changes an existing table (not one created earlier in this file).
    on_existing: bool = False
    #: for a guarded-DDL DO block: the statements inside, each with its `on_existing`, so lint
    #: judges them too.
    inner: tuple[tuple[ast.Node, bool], ...] = ()


def classify(node: ast.Node, ctx: Context) -> Classification:
    handler = _HANDLERS.get(type(node))
    if handler is not None:
        return handler(node, ctx)
    if type(node) in _CREATIONS:
        return Classification(E, TX, WEAK, False, _words(node))
    # Unknown to pgshift: assume the worst so a person looks (a directive can say otherwise).
    return Classification(C, TX, STRONG, False, _words(node))


def _words(node: ast.Node) -> str:
    """`CreateEnumStmt` -> "create enum"; a fallback summary."""
    name = type(node).__name__.removesuffix("Stmt")
    out = "".join(f" {c.lower()}" if c.isupper() else c for c in name).strip()
    return out


# --- tables ------------------------------------------------------------------------------------


def _create_table(node: ast.CreateStmt, ctx: Context) -> Classification:
    schema, name = relation_name(relation(node))
    # REFERENCES an existing table takes SHARE ROW EXCLUSIVE on it, and PARTITION OF / INHERITS
    # lock the parent: then waiting for that lock blocks the application, so bound the wait.
    lock = WEAK
    for rv in _referenced_tables(node):
        other = relation_name(rv)
        if table_key(*other) != table_key(schema, name) and ctx.exists(*other):
            lock = STRONG
    key = table_key(schema, name)
    if node.if_not_exists and not (ctx.absent is not None and ctx.absent(schema, name)):
        # IF NOT EXISTS: the table may already hold rows, so it is never treated as new and
        # empty (the rewrites that follow are safe either way). Not asking the database keeps
        # the plan the same when a run resumes after the CREATE has been applied. Only the
        # form a run applies whole in one transaction asks (`Context.absent`): a table absent
        # under the run's lock is created here, empty and private.
        return Classification(E, TX, lock, False, f"create table {written(schema, name)}",
                              tables=(written(schema, name),), assumes=(key,))
    return Classification(
        E, TX, lock, False, f"create table {written(schema, name)}",
        tables=(written(schema, name),), creates=(key,),
    )


def _referenced_tables(node: ast.CreateStmt) -> list[ast.RangeVar]:
    found: list[ast.RangeVar] = list(node.inhRelations or ())
    for element in node.tableElts or ():
        constraints = (
            element.constraints or () if isinstance(element, ast.ColumnDef) else (element,)
        )
        for c in constraints:
            if (isinstance(c, ast.Constraint) and c.contype == ConstrType.CONSTR_FOREIGN
                    and c.pktable):
                found.append(c.pktable)
    return found


def _create_table_as(node: ast.CreateTableAsStmt, ctx: Context) -> Classification:
    rv = required(required(node.into, "CREATE TABLE AS's target").rel, "its table")
    schema, name = relation_name(rv)
    kind = "materialized view" if node.objtype == ObjectType.OBJECT_MATVIEW else "table"
    return Classification(
        E, TX, WEAK, False, f"create {kind} {written(schema, name)}",
        tables=(written(schema, name),), creates=(table_key(schema, name),),
    )


def _create_index(node: ast.IndexStmt, ctx: Context) -> Classification:
    rv = relation(node)
    schema, name = relation_name(rv)
    table = written(schema, name)
    what = "unique index" if node.unique else "index"
    summary = f"create {what} {node.idxname or ''} on {table}".replace("  ", " ")
    qualified = index_name(rv, node.idxname)
    if node.concurrent:
        return Classification(
            E, AUTO, WEAK, False, summary, tables=(table,), index_name=qualified,
            on_existing=ctx.exists(schema, name),
        )
    existing = ctx.exists(schema, name)
    # a plain CREATE INDEX takes SHARE: it blocks writes for the whole build.
    return Classification(
        E, TX, STRONG if existing else WEAK, False, summary, tables=(table,),
        index_name=qualified, on_existing=existing,
    )


# --- ALTER TABLE -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cmd:
    phase: Phase
    destructive: bool
    summary: str
    #: takes only SHARE UPDATE EXCLUSIVE (VALIDATE CONSTRAINT): blocks neither reads nor writes.
    weak: bool = False


def _alter_table(node: ast.AlterTableStmt, ctx: Context) -> Classification:
    schema, name = relation_name(relation(node))
    table = written(schema, name)
    if node.objtype not in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_FOREIGN_TABLE):
        kinds: dict[ObjectType | None, str] = {
            ObjectType.OBJECT_INDEX: "index", ObjectType.OBJECT_VIEW: "view",
            ObjectType.OBJECT_SEQUENCE: "sequence", ObjectType.OBJECT_MATVIEW: "materialized view",
        }
        kind = kinds.get(node.objtype, "object")
        return Classification(C, TX, STRONG, False, f"alter {kind} {table}", tables=(table,))
    key = table_key(schema, name)
    cmds = [_alter_cmd(cmd, table) for cmd in node.cmds or ()]
    detach = next((c.def_ for c in node.cmds or () if c.subtype == AT.AT_DetachPartition
                   and isinstance(c.def_, ast.PartitionCmd) and c.def_.concurrent), None)
    if detach is not None:
        # PostgreSQL 14+ refuses DETACH ... CONCURRENTLY in a transaction block; it takes only
        # SHARE UPDATE EXCLUSIVE on the parent (two transactions of its own), so it runs alone.
        part = written(*relation_name(required(detach.name, "the partition")))
        return Classification(C, AUTO, WEAK, False, f"detach partition {part} from {table} "
                              "concurrently", tables=(table,), on_existing=ctx.exists(schema, name))
    for i, cmd in enumerate(node.cmds or ()):
        added = ctx.constraint_phases.get((key, cmd.name or ""))
        if cmd.subtype == AT.AT_ValidateConstraint and added is not None:
            # validating belongs with adding: a check added NOT VALID in contract is validated
            # there too, not in an expand step that the gate would then hold back.
            cmds[i] = _Cmd(added, False, cmds[i].summary, weak=True)
    summary = "; ".join(c.summary for c in cmds) or f"alter table {table}"
    if not ctx.exists(schema, name):
        # a FOREIGN KEY takes SHARE ROW EXCLUSIVE on the table it references too: when that one
        # exists, waiting for it blocks the application's writes there, so bound the wait.
        lock = WEAK
        for cmd in node.cmds or ():
            con = cmd.def_ if cmd.subtype == AT.AT_AddConstraint else None
            if (isinstance(con, ast.Constraint) and con.contype == ConstrType.CONSTR_FOREIGN
                    and con.pktable is not None
                    and table_key(*relation_name(con.pktable)) != key
                    and ctx.exists(*relation_name(con.pktable))):
                lock = STRONG
        return Classification(E, TX, lock, False, summary, tables=(table,))
    phase = max((c.phase for c in cmds), key=lambda p: p.rank, default=C)
    weak = bool(cmds) and all(c.weak for c in cmds)
    return Classification(
        phase,
        # VALIDATE runs on its own, committed: the NOT VALID constraint before it must be
        # committed first (so new rows are checked and a catch-up can run), and its long scan
        # must not hold the ACCESS EXCLUSIVE lock an ADD CONSTRAINT in the same transaction took.
        AUTO if weak else TX,
        WEAK if weak else STRONG,
        any(c.destructive for c in cmds),
        summary,
        tables=(table,),
        on_existing=True,
    )


def _alter_cmd(cmd: ast.AlterTableCmd, table: str) -> _Cmd:
    col = f"{table}.{cmd.name}" if cmd.name else table
    st = subtype(cmd)
    special = _detach_cmd(cmd, table) or _rewriting_cmd(cmd, table)
    if special is not None:
        return special
    if st == AT.AT_AddColumn:
        return _Cmd(E, False, f"add column {table}.{column_of(cmd).colname}")
    if st == AT.AT_DropColumn:
        return _Cmd(C, True, f"drop column {col}")
    if st == AT.AT_ColumnDefault:
        # setting a default is catalog-only; dropping one breaks old code that relies on it.
        return (_Cmd(E, False, f"set default {col}") if cmd.def_ is not None
                else _Cmd(C, False, f"drop default {col}"))
    if st == AT.AT_SetNotNull:
        return _Cmd(C, False, f"set not null {col}")
    if st == AT.AT_DropNotNull:
        return _Cmd(E, False, f"drop not null {col}")
    if st == AT.AT_AlterColumnType:
        return _Cmd(C, True, f"change type of {col}")
    if st == AT.AT_AddConstraint:
        return _add_constraint(constraint_of(cmd), table)
    if st == AT.AT_ValidateConstraint:
        return _Cmd(E, False, f"validate constraint {cmd.name} on {table}", weak=True)
    if st == AT.AT_DropConstraint:
        return _Cmd(C, False, f"drop constraint {cmd.name} on {table}")
    if st in (AT.AT_SetStatistics, AT.AT_SetOptions, AT.AT_ResetOptions, AT.AT_SetStorage,
              AT.AT_SetCompression, AT.AT_ChangeOwner, AT.AT_ReplicaIdentity,
              AT.AT_SetRelOptions, AT.AT_ResetRelOptions, AT.AT_AddIdentity, AT.AT_SetIdentity):
        return _Cmd(E, False, f"alter table {table} ({_subtype_words(st)})")
    return _Cmd(C, False, f"alter table {table} ({_subtype_words(st)})")


def _detach_cmd(cmd: ast.AlterTableCmd, table: str) -> _Cmd | None:
    """DETACH PARTITION ... CONCURRENTLY takes SHARE UPDATE EXCLUSIVE and PostgreSQL refuses
    it inside a transaction block: its own autocommit step, like VALIDATE. The plain form takes
    ACCESS EXCLUSIVE; FINALIZE completes an interrupted concurrent detach."""
    if cmd.subtype not in (AT.AT_DetachPartition, AT.AT_DetachPartitionFinalize):
        return None
    partition = child(cmd.def_, ast.PartitionCmd, "DETACH PARTITION's partition")
    part = partition.name
    name = f" {written(*relation_name(part))}" if part is not None else ""
    if cmd.subtype == AT.AT_DetachPartitionFinalize:
        return _Cmd(C, False, f"finalize detach partition{name} from {table}")
    if partition.concurrent:
        return _Cmd(C, False, f"detach partition{name} from {table} concurrently", weak=True)
    return _Cmd(C, False, f"detach partition{name} from {table}")


#: ALTER TABLE forms that copy the whole table (and its indexes) under ACCESS EXCLUSIVE.
REWRITING = {
    AT.AT_SetLogged: "set logged", AT.AT_SetUnLogged: "set unlogged",
    AT.AT_SetAccessMethod: "set access method", AT.AT_SetTableSpace: "set tablespace",
}


def _rewriting_cmd(cmd: ast.AlterTableCmd, table: str) -> _Cmd | None:
    words = REWRITING.get(subtype(cmd))
    if words is None:
        return None
    target = f" {cmd.name}" if cmd.name else ""
    return _Cmd(C, False, f"{words}{target} on {table} (rewrites the table)")


def _subtype_words(st: AT) -> str:
    return _words_of(st.name.removeprefix("AT_"))


def _words_of(camel: str) -> str:
    return "".join(f" {c.lower()}" if c.isupper() else c for c in camel).strip()


def _add_constraint(con: ast.Constraint, table: str) -> _Cmd:
    name = f" {con.conname}" if con.conname else ""
    ct = con.contype
    if ct == ConstrType.CONSTR_FOREIGN:
        # new rows must reference existing ones: old code does not write the new column yet.
        return _Cmd(E, False, f"add foreign key{name} on {table}")
    if ct == ConstrType.CONSTR_UNIQUE:
        # contract: it rejects duplicate writes that old code may still make.
        return _Cmd(C, False, f"add unique{name} on {table}")
    if ct == ConstrType.CONSTR_PRIMARY:
        return _Cmd(C, False, f"add primary key{name} on {table}")
    if ct == ConstrType.CONSTR_CHECK:
        return _Cmd(C, False, f"add check{name} on {table}")
    return _Cmd(C, False, f"add constraint{name} on {table}")


# --- DROP, RENAME, TRUNCATE ---------------------------------------------------------------------


def _object_name(obj: object) -> str:
    if isinstance(obj, tuple | list):
        return ".".join(getattr(p, "sval", str(p)) for p in obj)
    if isinstance(obj, ast.String):
        return typing.cast(str, obj.sval)
    if isinstance(obj, ast.Node):
        return render(obj)
    return str(obj)


def _drop(node: ast.DropStmt, ctx: Context) -> Classification:
    kind = _object_kind(required(node.removeType, "DROP's object type"))
    names = [_object_name(o) for o in node.objects or ()]
    summary = f"drop {kind} {', '.join(names)}"
    tables: tuple[str, ...] = ()
    if node.removeType in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_MATVIEW):
        tables = tuple(names)
        parts = [_split_name(n) for n in names]
        if parts and all(not ctx.exists(s, n) for s, n in parts):
            return Classification(E, TX, WEAK, False, summary, tables=tables)
    if node.concurrent:
        return Classification(C, AUTO, WEAK, True, summary, tables=tables)
    return Classification(C, TX, STRONG, True, summary, tables=tables, on_existing=True)


def _object_kind(object_type: int) -> str:
    """ObjectType.OBJECT_MATVIEW -> "matview"."""
    return ObjectType(object_type).name.removeprefix("OBJECT_").lower().replace("_", " ")


def _split_name(dotted: str) -> tuple[str | None, str]:
    schema, _, name = dotted.rpartition(".")
    return (schema or None, name)


def _rename(node: ast.RenameStmt, ctx: Context) -> Classification:
    rt = required(node.renameType, "RENAME's object type")
    newname = required(node.newname, "RENAME's new name")
    if node.relation is not None:
        schema, name = relation_name(node.relation)
        table = written(schema, name)
        existing = ctx.exists(schema, name)
    else:
        table, existing = _object_name(node.object) if node.object else "", True
    if rt == ObjectType.OBJECT_COLUMN:
        summary = f"rename column {table}.{node.subname} to {node.newname}"
    elif rt == ObjectType.OBJECT_TABLE:
        summary = f"rename table {table} to {node.newname}"
    elif rt == ObjectType.OBJECT_TABCONSTRAINT:
        summary = f"rename constraint {node.subname} on {table} to {node.newname}"
    else:
        kind = _object_kind(rt)
        summary = f"rename {kind} {table} to {node.newname}"
    tables = (table,) if node.relation is not None else ()
    if not existing:
        # a new table renamed is still new under its new name.
        creates: tuple[str, ...] = ()
        if rt == ObjectType.OBJECT_TABLE and node.relation is not None:
            creates = (table_key(node.relation.schemaname or None, newname),)
        return Classification(E, TX, WEAK, False, summary, tables=tables, creates=creates)
    # a rename breaks every query of the old application version that uses the old name.
    assumes: tuple[str, ...] = ()
    if rt == ObjectType.OBJECT_TABLE and node.relation is not None:
        # the table keeps its rows under its new name (the database does not know it yet).
        assumes = (table_key(node.relation.schemaname or None, newname),)
    return Classification(C, TX, STRONG, True, summary, tables=tables, on_existing=True,
                          assumes=assumes)


def _truncate(node: ast.TruncateStmt, ctx: Context) -> Classification:
    tables = tuple(written(*relation_name(rv)) for rv in items(node.relations))
    return Classification(C, TX, STRONG, True, f"truncate {', '.join(tables)}", tables=tables,
                          on_existing=True)


# --- data --------------------------------------------------------------------------------------


def _dml(verb: str, phase_on_existing: Phase, destructive: bool,
         ) -> Callable[[ast.UpdateStmt | ast.DeleteStmt | ast.MergeStmt, Context], Classification]:
    def handler(node: ast.UpdateStmt | ast.DeleteStmt | ast.MergeStmt,
                ctx: Context) -> Classification:
        schema, name = relation_name(relation(node))
        table = written(schema, name)
        summary = f"{verb} {table}"
        if not ctx.exists(schema, name):
            # seed rows of a table this file created: part of creating it.
            return Classification(E, TX, WEAK, False, summary, tables=(table,))
        # row locks only: DML waits for the rows it changes, never blocks the whole table.
        return Classification(phase_on_existing, TX, WEAK, destructive, summary, tables=(table,),
                              on_existing=True)

    return handler


def _insert(node: ast.InsertStmt, ctx: Context) -> Classification:
    schema, name = relation_name(relation(node))
    table = written(schema, name)
    select = node.selectStmt
    literal = select is None or (isinstance(select, ast.SelectStmt) and select.valuesLists)
    if literal or not ctx.exists(schema, name):
        # literal rows (seed data, lookup values) are additive.
        return Classification(E, TX, WEAK, False, f"insert into {table}", tables=(table,),
                              on_existing=ctx.exists(schema, name))
    return Classification(B, TX, WEAK, False, f"insert into {table} select", tables=(table,),
                          on_existing=True)


# --- everything else ---------------------------------------------------------------------------


def _alter_enum(node: ast.AlterEnumStmt, ctx: Context) -> Classification:
    type_name = _object_name(node.typeName)
    if node.oldVal:
        return Classification(C, TX, STRONG, True,
                              f"rename value {node.oldVal!r} of type {type_name}")
    # a new enum value cannot be used in the transaction that added it: commit it on its own.
    return Classification(E, AUTO, WEAK, False, f"add value {node.newVal!r} to type {type_name}")


def _vacuum(node: ast.VacuumStmt, ctx: Context) -> Classification:
    tables = tuple(written(*relation_name(r.relation)) for r in node.rels or () if r.relation)
    target = f" {', '.join(tables)}" if tables else ""
    if not node.is_vacuumcmd:
        return Classification(E, TX, WEAK, False, f"analyze{target}", tables=tables)
    if option_on(node.options, "full"):  # VACUUM (FULL FALSE) is a plain VACUUM
        return Classification(E, AUTO, STRONG, False, f"vacuum full{target}", tables=tables)
    return Classification(E, AUTO, WEAK, False, f"vacuum{target}", tables=tables)


def _reindex(node: ast.ReindexStmt, ctx: Context) -> Classification:
    if node.relation:
        target = f" {written(*relation_name(node.relation))}"
    else:
        target = f" {node.name or ''}"
    summary = f"reindex{target}".rstrip()
    if option_on(node.params, "concurrently"):  # (CONCURRENTLY FALSE) blocks writes
        return Classification(E, AUTO, WEAK, False, summary)
    # REINDEX SCHEMA/DATABASE/SYSTEM refuse a transaction block; TABLE/INDEX do not.
    from pglast.enums import ReindexObjectType as R

    tx = TX if node.kind in (R.REINDEX_OBJECT_TABLE, R.REINDEX_OBJECT_INDEX) else AUTO
    return Classification(E, tx, STRONG, False, summary)


def _explain(node: ast.ExplainStmt, ctx: Context) -> Classification:
    """EXPLAIN ANALYZE runs its statement: classify that one. Plain EXPLAIN only plans it."""
    if option_on(node.options, "analyze") and node.query is not None:
        inner = classify(node.query, ctx)
        return replace(inner, summary=f"explain analyze {inner.summary}", creates=(),
                       assumes=())
    return Classification(E, TX, WEAK, False, "explain")


def _fixed(phase: Phase, tx: TxMode, lock: LockClass, destructive: bool,
           summary: str) -> Callable[[ast.Node, Context], Classification]:
    def handler(node: ast.Node, ctx: Context) -> Classification:
        return Classification(phase, tx, lock, destructive, summary or _words(node))

    return handler


def _do(node: ast.DoStmt, ctx: Context) -> Classification:
    statements = guarded_statements(node)
    if not statements:
        return Classification(C, TX, STRONG, False, "do block")
    # classify what is inside as if it ran in order, on a scratch copy of what the run created.
    scratch = Context(created=set(ctx.created), not_null_checks=set(ctx.not_null_checks),
                      gated=ctx.gated, assumed=set(ctx.assumed), absent=ctx.absent)
    parts: list[Classification] = []
    for statement in statements:
        part = classify(statement, scratch)
        parts.append(part)
        scratch.learn(part.creates, part.assumes)
    return Classification(
        max((p.phase for p in parts), key=lambda p: p.rank),
        # ALTER TYPE ... ADD VALUE inside still has to be committed before it is used.
        AUTO if any(p.tx is AUTO for p in parts) else TX,
        STRONG if any(p.lock is STRONG for p in parts) else WEAK,
        any(p.destructive for p in parts),
        "guarded " + "; ".join(p.summary for p in parts),
        tables=tuple(dict.fromkeys(t for p in parts for t in p.tables)),
        creates=tuple(k for p in parts for k in p.creates),
        assumes=tuple(k for p in parts for k in p.assumes),
        on_existing=any(p.on_existing for p in parts),
        inner=tuple((st, p.on_existing) for st, p in zip(statements, parts, strict=True)),
    )


def _refresh(node: ast.RefreshMatViewStmt, ctx: Context) -> Classification:
    name = written(*relation_name(relation(node)))
    # data, not schema; CONCURRENTLY lets reads go on (EXCLUSIVE), the plain form does not.
    lock = WEAK if node.concurrent else STRONG
    return Classification(B, TX, lock, False, f"refresh materialized view {name}")


def _view(node: ast.ViewStmt, ctx: Context) -> Classification:
    name = written(*relation_name(required(node.view, "the view")))
    # CREATE OR REPLACE of an existing view takes ACCESS EXCLUSIVE on it.
    return Classification(E, TX, STRONG if node.replace else WEAK, False, f"create view {name}")


def _trigger_like(
    verb: str,
) -> Callable[[ast.CreateTrigStmt | ast.CreatePolicyStmt, Context], Classification]:
    def handler(node: ast.CreateTrigStmt | ast.CreatePolicyStmt, ctx: Context) -> Classification:
        rv = node.relation if isinstance(node, ast.CreateTrigStmt) else node.table
        schema, name = relation_name(required(rv, "the table"))
        existing = ctx.exists(schema, name)
        # triggers and policies lock their table (SHARE ROW EXCLUSIVE / ACCESS EXCLUSIVE).
        return Classification(E, TX, STRONG if existing else WEAK, False,
                              f"{verb} on {written(schema, name)}", tables=(written(schema, name),),
                              on_existing=existing)

    return handler


def _object_schema(node: ast.AlterObjectSchemaStmt, ctx: Context) -> Classification:
    what = written(*relation_name(node.relation)) if node.relation else _object_name(node.object)
    summary = f"set schema of {what} to {node.newschema}"
    if node.objectType == ObjectType.OBJECT_TABLE and node.relation is not None:
        schema, name = relation_name(node.relation)
        moved = table_key(node.newschema, name)
        if not ctx.exists(schema, name):
            return Classification(E, TX, WEAK, False, summary, tables=(what,), creates=(moved,))
        return Classification(C, TX, STRONG, True, summary, tables=(what,), on_existing=True,
                              assumes=(moved,))
    return Classification(C, TX, STRONG, True, summary)


#: each handler takes the node class it is filed under (`classify` looks it up by `type(node)`),
#: which a dict's value type cannot say: hence `Any` for the node.
_HANDLERS: dict[type, Callable[[Any, Context], Classification]] = {
    ast.CreateStmt: _create_table,
    ast.CreateTableAsStmt: _create_table_as,
    ast.IndexStmt: _create_index,
    ast.AlterTableStmt: _alter_table,
    ast.DropStmt: _drop,
    ast.RenameStmt: _rename,
    ast.TruncateStmt: _truncate,
    ast.UpdateStmt: _dml("update", B, False),
    ast.DeleteStmt: _dml("delete from", C, True),
    ast.MergeStmt: _dml("merge into", B, False),
    ast.InsertStmt: _insert,
    ast.AlterEnumStmt: _alter_enum,
    ast.VacuumStmt: _vacuum,
    ast.ReindexStmt: _reindex,
    ast.ExplainStmt: _explain,
    ast.ClusterStmt: _fixed(E, TX, STRONG, False, "cluster"),
    ast.AlterSystemStmt: _fixed(E, AUTO, WEAK, False, "alter system"),
    ast.CreatedbStmt: _fixed(E, AUTO, WEAK, False, "create database"),
    ast.DropdbStmt: _fixed(C, AUTO, STRONG, True, "drop database"),
    ast.DoStmt: _do,
    ast.ViewStmt: _view,
    ast.CreateTrigStmt: _trigger_like("create trigger"),
    ast.CreatePolicyStmt: _trigger_like("create policy"),
    ast.AlterObjectSchemaStmt: _object_schema,
    ast.SelectStmt: _fixed(E, TX, WEAK, False, "select"),
    ast.RefreshMatViewStmt: _refresh,
    # refused inside a transaction block.
    ast.CreateTableSpaceStmt: _fixed(E, AUTO, WEAK, False, "create tablespace"),
    ast.DropTableSpaceStmt: _fixed(C, AUTO, WEAK, True, "drop tablespace"),
    ast.CreateSubscriptionStmt: _fixed(E, AUTO, WEAK, False, "create subscription"),
    ast.VariableSetStmt: _fixed(E, TX, WEAK, False, "set"),
    ast.TransactionStmt: _fixed(C, TX, STRONG, False, "transaction control"),
}

#: creations of new objects: additive, and they lock nothing the application uses.
_CREATIONS: frozenset[type] = frozenset({
    ast.CreateEnumStmt, ast.CompositeTypeStmt, ast.CreateDomainStmt, ast.CreateSeqStmt,
    ast.CreateSchemaStmt, ast.CreateExtensionStmt, ast.CreateFunctionStmt, ast.DefineStmt,
    ast.CommentStmt, ast.GrantStmt, ast.GrantRoleStmt, ast.CreateRoleStmt, ast.AlterSeqStmt,
    ast.CreateRangeStmt, ast.CreateCastStmt, ast.CreateStatsStmt, ast.AlterDefaultPrivilegesStmt,
    ast.CreateForeignTableStmt, ast.CreateForeignServerStmt, ast.CreateFdwStmt,
    ast.CreateUserMappingStmt, ast.CreateConversionStmt, ast.CreateOpClassStmt,
    ast.CreateOpFamilyStmt, ast.CreateTransformStmt, ast.CreateAmStmt, ast.CreatePLangStmt,
    ast.CreateEventTrigStmt, ast.CreatePublicationStmt,
})
