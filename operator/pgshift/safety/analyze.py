"""The entry point: one migration in, the statements that will really run (and lint) out.

For each statement in file order: merge its directives with the migration's override, classify
it from the parse tree, replace it by a safe rewrite when it is unsafe on an existing table,
turn idempotent UPDATEs into batched backfills, then lint what will run. Order is never
changed: a rewrite's statements take the original's place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from pglast import ast
from pglast.enums import AlterTableType, ConstrType, NullTestType

from pgshift.errors import DirectiveError, OverridesError
from pgshift.migrations.model import Migration, Source
from pgshift.safety import rewrites
from pgshift.safety.backfill import backfill_for, batchable, idempotent
from pgshift.safety.classify import Classification, classify
from pgshift.safety.context import Context
from pgshift.safety.control import check as check_control
from pgshift.safety.control import check_statement
from pgshift.safety.directives import merge
from pgshift.safety.facts import CatalogFacts
from pgshift.safety.model import (
    Analysis,
    Directives,
    Finding,
    LockClass,
    Phase,
    PlannedStatement,
    TxMode,
)
from pgshift.safety.names import relation_name, render, table_key
from pgshift.safety.rules import RULES, Subject
from pgshift.safety.rules.transaction_nesting import is_step_boundary
from pgshift.safety.statements import SourceStatement, is_large, iter_statements
from pgshift.safety.volatility import defined, may_define

#: nothing known of the database (offline).
NO_FACTS = CatalogFacts()

#: `PlannedStatement.rewrite` of an UPDATE that pgshift batches on its own (its SQL is unchanged).
AUTO_BACKFILL = "batched-backfill"


def analyze(
    migration: Migration,
    *,
    override: Directives | None = None,
    facts: CatalogFacts = NO_FACTS,
    rewrite: bool = True,
    lint: bool = True,
    render: bool = True,
    keyless_before: Mapping[str, str] | None = None,
    refuse_control: bool = True,
    enable: frozenset[str] = frozenset(),
) -> Analysis:
    """Parse, classify, rewrite and lint one migration.

    `facts` (`safety.facts.CatalogFacts`): what the database says, as data (the engine reads
    the catalog; safety stays pure). Two of its facts are read here:
    `facts.functions`, what is known of function volatility before this file (`volatility.py`:
    `name` / `schema.name` -> `i`/`s`/`v`): what earlier files of the source define, over the
    database catalog's `pg_proc.provolatile`. A default calling a function known nowhere is
    VOLATILE, as in PostgreSQL, and rewritten. The source's own definitions must win over the
    catalog: they are the same when a run resumes this file after earlier files (or this one's
    first steps) changed the catalog. And `facts.created_earlier` (below).
    `enable`: opt-in rules (`Rule.opt_in`, the type-style ones) to report too.

    `keyless_before` (lint only, never the plan): the tables earlier files left without a
    single-column primary key (`Analysis.keyless`), so lint can say that an UPDATE pgshift would
    batch runs as written there, and that a `backfill` directive there needs `key=`.
    `lint=False` leaves the findings out (a run does not show them; lint is a tenth of the cost).
    `render=False` leaves the SQL of rewritten statements empty: the plan's shape (steps, keys,
    phases) at a quarter less cost, for a file the engine will run in another form; such an
    analysis must never be run.
    `rewrite=False` (`--no-rewrite`, `spec.safety.rewrite: false`) runs every statement as
    written, UPDATEs included, unless a directive asks for a backfill. Raises ParseError /
    DirectiveError / OverridesError naming `path:line` or the migration; with `lint=False` (a
    run) also TransactionControl / ReleasesLock (`safety.control`), which lint reports as
    findings (`refuse_control=False`: not for a file that is not going to run, e.g. an
    applied one read for its backfill). A top-level `COMMIT` is not a statement: the one
    after it has `after_commit`.

    **The analysis depends on the file alone** (and its override and `rewrite`): a table is new
    — empty and private, its statements run as written — only when this file created it, and
    only until the file's first contract statement (after it everything waits for the gate, and
    once the gate opens the new application may write to the table). Every other table is
    treated as existing. This is deliberate: the plan of a file that a run left half applied
    must be the same when the next run resumes it, or step keys shift and a done step runs
    twice (or a pending one is skipped). Answers that depend on the run — which tables the
    database holds now (`facts.tables`), what earlier files of this run create, whether an
    earlier file reached the gate — change between the first run and the resuming one, so
    they are not read. The cost is small: on a fresh database, statements on tables created by
    an earlier file of the same run are rewritten too, which is harmless on an empty table.

    `facts.created_earlier` (table keys) is the one exception, and not a plan: the engine
    passes the tables that earlier files *wholly applied by this very run* created, to get the
    form in which a file that no run has started yet can run as written (those tables are
    empty and private until the run ends). It uses that form only when every statement of it
    can share one transaction, so the file commits whole or not at all and no step of it is
    ever recorded: a later run never has to resume it, and the stable plan's step keys stay
    valid (see `engine/apply.py`).
    """
    ctx = Context()
    ctx.created.update(facts.created_earlier)
    ctx.keyless.update(keyless_before or {})
    ctx.functions.update(facts.functions)
    if facts.absent_creates:
        ctx.absent = lambda schema, name: not facts.table_exists(schema, name)
    planned: list[PlannedStatement] = []
    findings: list[Finding] = []
    created_here: set[str] = set()
    refuse = not lint and refuse_control  # a run: refused before anything runs (lint: findings)
    # a large file streams (its trees are not kept): checked statement by statement instead,
    # still before any of it runs (the analysis ends before the file's first step).
    large = is_large(migration)
    if refuse and not large:
        check_control(migration, override)
    sources = iter_statements(migration)
    #: a top-level COMMIT before the next statement: it starts a new step.
    after_commit = False
    for source in sources:
        if refuse and large:
            check_statement(migration, source, override)
        if is_step_boundary(source.node):
            after_commit = True
            continue
        directives = merge(source.directives, _for_statement(override, source.node))
        cls = classify(source.node, ctx)
        # one finding per rule and message for a statement, however many parts its rewrite has
        # (a rule that reads the statement's text sees the same text in each part).
        seen: set[tuple[str, str]] = set()
        # on tables this file's own transaction created (this statement's included) only.
        on_new_only = bool(cls.tables) and all(
            _key_of(t) in created_here or _key_of(t) in cls.creates for t in cls.tables
        ) and not set(cls.assumes) & {_key_of(t) for t in cls.tables}
        for node, statement in _plan(
            source, cls, directives, ctx, rewrite, migration.path, render, on_new_only
        ):
            if after_commit:
                statement = replace(statement, after_commit=True)
                after_commit = False
            planned.append(statement)
            if lint:
                findings.extend(
                    _lint(node, statement, cls, directives, ctx, migration.path, enable, seen)
                )
            _remember(node, statement, ctx)
            if statement.phase is Phase.CONTRACT:
                ctx.gated = True
        _learn_keys(source.node, ctx)
        ctx.functions.update(defined(source.node))
        ctx.learn(cls.creates, cls.assumes)
        created_here.update(cls.creates)
        created_here.difference_update(cls.assumes)
    if override is not None and override.backfill and not any(
        s.tx is TxMode.BATCHED for s in planned
    ):
        raise OverridesError(
            f"overrides: {migration.name}: backfill, but {migration.path} has no UPDATE to batch"
        )
    return Analysis(
        tuple(planned), tuple(findings), frozenset(created_here), gated=ctx.gated,
        keyless=dict(ctx.keyless), functions=dict(ctx.functions),
    )


def _key_of(table: str) -> str:
    """The `names.table_key` of a table as `Classification.tables` writes it (`schema.name`)."""
    schema, dot, name = table.partition(".")
    return table_key(schema, name) if dot else table


def _learn_keys(node: ast.Node, ctx: Context) -> None:
    """Which tables have no single-column primary key to batch over (for lint)."""
    if isinstance(node, ast.CreateStmt):
        if (node.partbound or node.inhRelations or node.ofTypename
                or any(isinstance(e, ast.TableLikeClause) for e in node.tableElts or ())):
            return  # the key comes from elsewhere: unknown
        keys: list[str] = []
        for element in node.tableElts or ():
            if isinstance(element, ast.ColumnDef):
                if any(isinstance(c, ast.Constraint) and c.contype == ConstrType.CONSTR_PRIMARY
                       for c in element.constraints or ()):
                    keys.append(str(element.colname))
            elif (isinstance(element, ast.Constraint)
                    and element.contype == ConstrType.CONSTR_PRIMARY):
                keys.extend(k.sval for k in element.keys or ())
        if node.relation is not None:
            _note_keys(table_key(*relation_name(node.relation)), keys, ctx)
    elif isinstance(node, ast.AlterTableStmt) and node.relation is not None:
        for cmd in node.cmds or ():
            con = cmd.def_ if cmd.subtype == AlterTableType.AT_AddConstraint else None
            if isinstance(con, ast.Constraint) and con.contype == ConstrType.CONSTR_PRIMARY:
                table = table_key(*relation_name(node.relation))
                if con.keys:
                    _note_keys(table, [k.sval for k in con.keys], ctx)
                else:  # USING INDEX: its columns are not known here
                    ctx.keyless.pop(table, None)


def _note_keys(key: str, columns: list[str], ctx: Context) -> None:
    if len(columns) == 1:
        ctx.keyless.pop(key, None)
    elif not columns:
        ctx.keyless[key] = "has no primary key"
    else:
        ctx.keyless[key] = "has a composite primary key (" + ", ".join(columns) + ")"


def _for_statement(override: Directives | None, node: ast.Node) -> Directives | None:
    """An override's `backfill` is about the migration's UPDATE(s), not its other statements."""
    if override is None or not override.backfill or isinstance(node, ast.UpdateStmt):
        return override
    return replace(override, backfill=False, backfill_key=None)


def analyze_all(
    migrations: Iterable[Migration],
    *,
    overrides: Mapping[str, Directives] | None = None,
    facts: CatalogFacts = NO_FACTS,
    rewrite: bool = True,
    enable: frozenset[str] = frozenset(),
) -> list[Analysis]:
    """Analyse a source's migrations in order, as lint reads them (each on its own: see
    `analyze`); `facts.functions`: what is known of function volatility before the first
    (each file passes on what it defined, and the tables it left keyless)."""
    overrides = overrides or {}
    out: list[Analysis] = []
    keyless: Mapping[str, str] = {}
    for m in migrations:
        out.append(analyze(m, override=overrides.get(m.name), facts=facts, rewrite=rewrite,
                           keyless_before=keyless, enable=enable))
        keyless = out[-1].keyless
        facts = replace(facts, functions=out[-1].functions)
    return out


def functions_before(
    migrations: Iterable[Migration], known: Mapping[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """Migration name -> what is known of function volatility before it: `known` (the
    catalog), then what each earlier file's CREATE/ALTER FUNCTION said. Only files that
    mention `function` are parsed, so this is cheap beside the analysis itself."""
    out: dict[str, dict[str, str]] = {}
    facts = dict(known or {})
    for m in migrations:
        out[m.name] = dict(facts)
        if may_define(m.sql):
            for source in iter_statements(m):
                facts.update(defined(source.node))
    return out


def lint(
    source: Source | Iterable[Migration],
    overrides: Mapping[str, Directives] | None = None,
    enable: frozenset[str] = frozenset(),
) -> list[Finding]:
    """Every finding of every migration, offline, as `pgshift lint` shows them.

    Like squawk, a table is new only in the file that creates it: when a migration is deployed,
    the ones before it are normally applied already and their tables hold rows.
    """
    migrations = source.migrations if isinstance(source, Source) else source
    return [f for a in analyze_all(migrations, overrides=overrides, enable=enable)
            for f in a.findings]


# --- planning ----------------------------------------------------------------------------------


def _plan(
    source: SourceStatement,
    cls: Classification,
    d: Directives,
    ctx: Context,
    rewrite_on: bool,
    path: str,
    render_sql: bool = True,
    on_new_only: bool = False,
) -> list[tuple[ast.Node, PlannedStatement]]:
    node = source.node

    def planned(sql: str, **kw: object) -> PlannedStatement:
        base: dict[str, object] = {
            "sql": sql, "phase": d.phase or cls.phase,
            "tx": TxMode.AUTOCOMMIT if d.no_transaction else cls.tx, "lock": cls.lock,
            "destructive": cls.destructive, "source_index": source.index, "line": source.line,
            "original_sql": source.text, "tables": cls.tables, "index_name": cls.index_name,
            "summary": cls.summary, "on_new_only": on_new_only,
        }
        base.update(kw)
        return PlannedStatement(**base)  # type: ignore[arg-type]

    if d.backfill:
        if not isinstance(node, ast.UpdateStmt) or not batchable(node):
            raise DirectiveError(
                f"{path}:{source.line}: directive 'backfill' needs a single-table UPDATE without "
                "an alias, FROM, RETURNING, WITH or WHERE CURRENT OF"
            )
        return [(node, planned(
            source.text, phase=d.phase or Phase.BACKFILL, tx=TxMode.BATCHED, lock=LockClass.WEAK,
            backfill=backfill_for(node, d.backfill_key),
        ))]
    may_rewrite = rewrite_on and d.rewrite and cls.on_existing
    if may_rewrite and isinstance(node, ast.UpdateStmt) and batchable(node) and idempotent(node):
        return [(node, planned(
            source.text, tx=TxMode.BATCHED, lock=LockClass.WEAK, rewrite=AUTO_BACKFILL,
            backfill=backfill_for(node, None),
        ))]
    found = rewrites.rewrite(node, ctx.functions) if may_rewrite else None
    if found is None:
        return [(node, planned(source.text))]
    rewrite_id, parts = found
    return [
        (part.node, planned(
            render(part.node) if render_sql else "",
            phase=d.phase or part.phase or cls.phase,
            # an explicit no-transaction still wins, except over batches (each its own
            # transaction by nature); AUTOCOMMIT parts stay so.
            tx=TxMode.AUTOCOMMIT if d.no_transaction and part.tx is TxMode.TRANSACTION
            else part.tx,
            lock=part.lock, rewrite=rewrite_id, summary=part.summary,
            index_name=part.index_name, index_unique=part.index_unique, catch_up=part.catch_up,
            backfill=part.backfill,
        ))
        for part in parts
    ]


def _remember(node: ast.Node, statement: PlannedStatement, ctx: Context) -> None:
    """Note what later statements of the file depend on: the phase each named constraint is
    added in (its VALIDATE follows it), and a *validated* `CHECK (col IS NOT NULL)` (a later
    SET NOT NULL on col skips its scan; PostgreSQL uses only validated checks as proof)."""
    if not isinstance(node, ast.AlterTableStmt) or node.relation is None:
        return
    key = table_key(*relation_name(node.relation))
    for cmd in node.cmds or ():
        con = cmd.def_ if cmd.subtype == AlterTableType.AT_AddConstraint else None
        if isinstance(con, ast.Constraint) and con.conname:
            ctx.constraint_phases[(key, con.conname)] = statement.phase
        if (isinstance(con, ast.Constraint) and con.contype == ConstrType.CONSTR_CHECK
                and isinstance(con.raw_expr, ast.NullTest)
                and con.raw_expr.nulltesttype == NullTestType.IS_NOT_NULL
                and isinstance(con.raw_expr.arg, ast.ColumnRef) and con.raw_expr.arg.fields):
            column = con.raw_expr.arg.fields[-1].sval
            if not con.skip_validation:
                ctx.not_null_checks.add((key, column))
            elif con.conname:
                ctx.unvalidated_not_null[(key, con.conname)] = column
        if cmd.subtype == AlterTableType.AT_ValidateConstraint and cmd.name:
            validated = ctx.unvalidated_not_null.pop((key, cmd.name), None)
            if validated is not None:
                ctx.not_null_checks.add((key, validated))


# --- lint --------------------------------------------------------------------------------------


def _lint(
    node: ast.Node,
    statement: PlannedStatement,
    cls: Classification,
    d: Directives,
    ctx: Context,
    path: str,
    enable: frozenset[str] = frozenset(),
    seen: set[tuple[str, str]] | None = None,
) -> list[Finding]:
    subjects = [Subject(node=node, planned=statement, on_existing=cls.on_existing, ctx=ctx)]
    if node is not None and not statement.rewrite:
        # the statements inside a guarded DO block are judged as if written on their own.
        subjects += [Subject(node=n, planned=statement, on_existing=e, ctx=ctx)
                     for n, e in cls.inner]
    findings: list[Finding] = []
    seen = set() if seen is None else seen
    for rule in RULES.values():
        if rule.id in d.allow or (rule.opt_in and rule.id not in enable):
            continue
        for subject in subjects:
            for v in rule.check(subject):
                if (rule.id, v.message) in seen:
                    continue
                seen.add((rule.id, v.message))
                findings.append(Finding(
                    rule=rule.id, severity=v.severity or rule.severity, message=v.message,
                    path=path, line=statement.line, help=v.help, docs=rule.docs,
                ))
    return findings
