"""The pure planner: state (applied/pending/drifted, named problems) and step cutting."""

import pytest

from pgshift.contract.summary import StopReason
from pgshift.engine.plan import build_plan, select
from pgshift.engine.state import State, compare
from pgshift.engine.steps import as_written_steps, cut_steps, holds_lock_past_new_tables
from pgshift.engine.tracking import Row
from pgshift.errors import Drift, OutOfOrder, UnknownApplied, UnknownMigration, UsageError
from pgshift.migrations import read_mapping
from pgshift.safety.model import Analysis, LockClass, Phase, PlannedStatement, TxMode
from pgshift.settings import Allow, DestructivePolicy, Selection


def stable(*sqls: str):
    import json

    entries = [
        {
            "idx": i,
            "version": "7",
            "when": 1000 * (i + 1),
            "tag": f"{i:04d}_m{i}",
            "breakpoints": True,
        }
        for i in range(len(sqls))
    ]
    files = {
        "_journal.json": json.dumps({"version": "7", "dialect": "postgresql", "entries": entries})
    }
    files.update({f"{i:04d}_m{i}.sql": s for i, s in enumerate(sqls)})
    return read_mapping(files)


def v1(*sqls: str):
    return read_mapping({f"2025010100000{i}_m{i}.sql": s for i, s in enumerate(sqls)})


def row(i: int, m, *, hash_: str | None = None, name: str | None = None) -> Row:
    return Row(id=i, hash=hash_ or m.hash, created_at=m.when, name=name)


def st(
    sql: str,
    phase=Phase.EXPAND,
    tx=TxMode.TRANSACTION,
    destructive=False,
    index=0,
    lock=LockClass.STRONG,
    new=False,
) -> PlannedStatement:
    return PlannedStatement(
        sql=sql,
        phase=phase,
        tx=tx,
        lock=lock,
        on_new_only=new,
        destructive=destructive,
        source_index=index,
        line=1,
        original_sql=sql,
        summary=sql,
    )


def test_applied_pending_and_drift() -> None:
    src = stable("select 1;", "select 2;", "select 3;")
    m0, m1, _ = src.migrations
    state = compare(src, [row(1, m0), row(2, m1, hash_="0" * 64)])
    assert [s.state for s in state.migrations] == [State.APPLIED, State.DRIFTED, State.PENDING]
    with pytest.raises(Drift) as info:
        state.check(Allow())
    assert "0001_m1" in info.value.message and "row id 2" in info.value.message
    state.check(Allow(drift=True))


def test_out_of_order_is_named_and_can_be_allowed() -> None:
    src = stable("select 1;", "select 2;", "select 3;")
    m0, _, m2 = src.migrations
    state = compare(src, [row(1, m0), row(2, m2)])
    with pytest.raises(OutOfOrder) as info:
        state.check(Allow())
    assert "0001_m1" in info.value.message
    state.check(Allow(out_of_order=True))


def test_rows_matching_no_file_are_unknown() -> None:
    src = stable("select 1;")
    (m0,) = src.migrations
    state = compare(src, [row(1, m0), Row(id=2, hash="ab" * 32, created_at=99999)])
    with pytest.raises(UnknownApplied) as info:
        state.check(Allow())
    assert "row id 2" in info.value.message
    state.check(Allow(unknown=True))


def test_v1_matches_by_name_and_nameless_rows_by_second() -> None:
    src = v1("select 1;", "select 2;")
    m0, m1 = src.migrations
    state = compare(src, [Row(1, m0.hash, m0.when, m0.name), Row(2, m1.hash, m1.when + 500, None)])
    assert [s.state for s in state.migrations] == [State.APPLIED, State.APPLIED]
    assert not state.unknown_rows


def test_steps_cut_by_phase_and_tx_and_keys_are_stable() -> None:
    src = stable("x")
    (m,) = src.migrations
    steps = cut_steps(
        m,
        (
            st("a"),
            st("b"),
            st("c", tx=TxMode.AUTOCOMMIT),
            st("d", tx=TxMode.AUTOCOMMIT),
            st("e", phase=Phase.BACKFILL, tx=TxMode.BATCHED),
            st("f", phase=Phase.CONTRACT),
            st("g", phase=Phase.CONTRACT),
        ),
    )
    assert [[s.sql for s in step.statements] for step in steps] == [
        ["a", "b"],
        ["c"],
        ["d"],
        ["e"],
        ["f", "g"],
    ]
    assert [s.key for s in steps] == [f"{m.hash[:12]}-{i}" for i in range(5)]
    assert [s.last for s in steps] == [False, False, False, False, True]


def test_as_written_form_keeps_the_stable_keys_in_one_transaction() -> None:
    (m,) = stable("x").migrations
    # stable: ALTER (0); CREATE INDEX CONCURRENTLY (1); ADD FK NOT VALID (2) + VALIDATE (2)
    steps = cut_steps(
        m,
        (
            st("alter", index=0),
            st("create index concurrently", tx=TxMode.AUTOCOMMIT, index=1),
            st("add fk not valid", index=2),
            st("validate", tx=TxMode.AUTOCOMMIT, index=2),
        ),
    )
    assert len(steps) == 4
    # the ALTER locks an existing table; only statements on tables of this file follow it.
    written = (
        st("alter", index=0),
        st("create index", index=1, lock=LockClass.WEAK, new=True),
        st("add fk", index=2, new=True),
    )
    fast = as_written_steps(steps, written)
    assert fast is not None
    assert [s.key for s in fast] == [s.key for s in steps]
    assert {s.tx for s in fast} == {TxMode.TRANSACTION}
    assert [[x.sql for x in s.statements] for s in fast] == [
        ["alter"], ["create index"], ["add fk"], [""]
    ]
    assert fast[-1].last
    # a statement that still needs its own transaction, or a later phase: not so.
    assert as_written_steps(steps, (*written[:2], st("x", tx=TxMode.AUTOCOMMIT, index=2))) is None
    assert as_written_steps(steps, (*written[:2], st("x", phase=Phase.CONTRACT, index=2))) is None


def test_as_written_form_refused_when_a_strong_lock_would_be_held_past_new_tables() -> None:
    """After a statement that locks an existing table (an FK referencing `users`), a statement
    on an existing table (or one naming no table) in the same transaction would hold that lock
    longer than the stable steps, which commit in between: the file keeps its stable steps."""
    (m,) = stable("x").migrations
    steps = cut_steps(
        m,
        (
            st("create table posts", index=0, lock=LockClass.WEAK, new=True),
            st("add fk posts->users not valid", index=1, new=True),
            st("validate", tx=TxMode.AUTOCOMMIT, lock=LockClass.WEAK, index=1, new=True),
            st("alter table orders add column", index=2),
        ),
    )
    create = st("create table posts", index=0, lock=LockClass.WEAK, new=True)
    fk = st("add fk posts->users", index=1, new=True)
    on_new = st("create index on posts", index=2, lock=LockClass.WEAK, new=True)
    existing = st("alter table orders add column", index=2)
    weak_existing = st("update orders", index=2, lock=LockClass.WEAK)
    no_table = st("create type", index=2, lock=LockClass.WEAK)
    assert holds_lock_past_new_tables((create, fk, existing))
    assert holds_lock_past_new_tables((create, fk, weak_existing))
    assert holds_lock_past_new_tables((create, fk, no_table))
    assert as_written_steps(steps, (create, fk, existing)) is None
    # the same before the lock, or only statements on this file's tables after it: one tx.
    assert not holds_lock_past_new_tables((no_table, weak_existing, create, fk, on_new))
    fast = as_written_steps(steps, (create, fk, on_new))
    assert fast is not None and {s.tx for s in fast} == {TxMode.TRANSACTION}


def test_empty_file_still_has_a_step() -> None:
    (m,) = stable("-- nothing\n").migrations
    steps = cut_steps(m, ())
    assert len(steps) == 1 and steps[0].last


def _plan(src, analyses, **kw):
    state = compare(src, [])
    by_name = dict(zip([m.name for m in src.migrations], analyses, strict=True))
    return build_plan(src, state, lambda m, **_: by_name[m.name], **kw)


def test_selection_until_phase_stop_before_and_approval() -> None:
    src = stable("a", "b")
    p = _plan(
        src,
        [
            Analysis((st("a"), st("b", phase=Phase.CONTRACT, destructive=True))),
            Analysis((st("c"),)),
        ],
    )
    run, stop = select(p, Selection(until_phase="expand"))
    assert [s.index for s in run] == [0] and stop.reason is StopReason.UNTIL_PHASE
    run, stop = select(p, Selection(stop_before=p.steps[2].key))
    assert len(run) == 2 and stop.reason is StopReason.STOP_BEFORE
    run, stop = select(p, Selection(destructive=DestructivePolicy.REQUIRE_APPROVAL))
    assert len(run) == 1 and stop.reason is StopReason.NEEDS_APPROVAL
    run, stop = select(
        p,
        Selection(
            destructive=DestructivePolicy.REQUIRE_APPROVAL, approve=frozenset({p.steps[1].key})
        ),
    )
    assert len(run) == 3 and stop.reason is StopReason.DONE
    run, stop = select(
        p, Selection(destructive=DestructivePolicy.DENY, approve=frozenset({"0000_m0"}))
    )
    assert len(run) == 1 and stop.reason is StopReason.NEEDS_APPROVAL
    with pytest.raises(UsageError):
        select(p, Selection(until_phase="later"))


def test_target_limits_the_plan() -> None:
    src = stable("a", "b", "c")
    analyses = [Analysis((st(x),)) for x in "abc"]
    p = _plan(src, analyses, target="0001_m1")
    assert [s.migration.name for s in p.steps] == ["0000_m0", "0001_m1"]
    assert p.beyond_target == ("0002_m2",)
    assert select(p, Selection())[1].reason is StopReason.TARGET
    with pytest.raises(UnknownMigration):
        _plan(src, analyses, target="nope")


def test_done_steps_are_left_out() -> None:
    src = stable("a")
    (m,) = src.migrations
    state = compare(src, [])
    p = build_plan(
        src,
        state,
        lambda m, **_: Analysis((st("a"), st("b", tx=TxMode.AUTOCOMMIT))),
        done={f"{m.hash[:12]}-0"},
    )
    assert [s.index for s in p.steps] == [1]


def test_nameless_rows_match_like_drizzle_1_0() -> None:
    from pgshift.engine.tracking import match_row_to_migration

    src = v1("select 1;", "select 2;")
    m0, m1 = src.migrations
    same_second = read_mapping(
        {"20250101000000_a.sql": "select 'a';", "20250101000000_b.sql": "select 'b';"}
    )
    a, b = same_second.migrations
    assert match_row_to_migration(Row(1, "x", m1.when + 999), src.migrations) is m1
    assert match_row_to_migration(Row(1, b.hash, a.when), same_second.migrations) is b
    assert match_row_to_migration(Row(1, "nomatch", a.when), same_second.migrations) is None
    assert match_row_to_migration(Row(1, m0.hash, 5), src.migrations) is m0


def test_plan_version_and_keys_follow_the_settings_that_cut_the_file() -> None:
    from pgshift.engine.steps import plan_version, step_key
    from pgshift.safety.model import Directives

    (m,) = stable("CREATE INDEX i ON t (a);").migrations
    assert plan_version(m, None, True) == m.hash
    # `allow` only silences lint: the same cut, the same records
    assert plan_version(m, Directives(allow=frozenset({"ban-drop-column"})), True) == m.hash
    other = {
        plan_version(m, None, False),
        plan_version(m, Directives(phase=Phase.CONTRACT), True),
        plan_version(m, Directives(no_transaction=True), True),
    }
    assert len(other) == 3 and m.hash not in other
    assert step_key(m, 0, m.hash) == step_key(m, 0) == f"{m.hash[:12]}-0"
    v = plan_version(m, None, False)
    assert step_key(m, 1, v) == f"{m.hash[:12]}.{v[:6]}-1"
    assert [s.key for s in cut_steps(m, (st("a"),), version=v)] == [f"{m.hash[:12]}.{v[:6]}-0"]


# --- COMMIT as a step boundary, statement-text hashes, --resume-edited (issue 9) ------------


def _steps(sql: str):
    from pgshift.safety import analyze

    (m,) = stable(sql).migrations
    return m, cut_steps(m, analyze(m, lint=False).statements)


def test_a_commit_in_the_file_cuts_a_step_that_never_shares_the_transaction_before_it() -> None:
    _m, steps = _steps("CREATE TABLE a (id int);\nCOMMIT;\nCREATE TABLE b (id int);\n")
    assert [(s.index, s.tx, s.after_commit) for s in steps] == [
        (0, TxMode.TRANSACTION, False), (1, TxMode.TRANSACTION, True)]
    _m, whole = _steps("CREATE TABLE a (id int);\nCREATE TABLE b (id int);\n")
    assert len(whole) == 1


def test_a_file_with_a_commit_is_never_run_whole_in_one_transaction() -> None:
    from pgshift.safety import analyze

    (m,) = stable("CREATE TABLE a (id int);\nCOMMIT;\nCREATE TABLE b (id int);\n").migrations
    statements = analyze(m, lint=False).statements
    assert as_written_steps(cut_steps(m, statements), statements) is None


def test_step_text_hashes_survive_an_edit_of_a_later_step() -> None:
    head = "ALTER TABLE t ADD COLUMN a int;\n--> statement-breakpoint\nVACUUM t;\n"
    m1, before = _steps(head + "--> statement-breakpoint\nSELECT 1/0;\n")
    m2, after = _steps(head + "--> statement-breakpoint\nSELECT 1;\n")
    assert m1.hash != m2.hash and before[0].key != after[0].key
    assert [s.text_hash for s in before[:2]] == [s.text_hash for s in after[:2]]
    assert before[2].text_hash != after[2].text_hash


def test_resume_renames_moves_unchanged_applied_steps_and_names_changed_ones() -> None:
    from pgshift.engine.steps import resume_renames
    from pgshift.engine.tracking import StepRecord
    from pgshift.errors import EditedAppliedStep

    m1, old = _steps("ALTER TABLE t ADD COLUMN a int;\n--> statement-breakpoint\nVACUUM t;\n"
                     "--> statement-breakpoint\nSELECT 1/0;\n")
    m2, new = _steps("ALTER TABLE t ADD COLUMN a int;\n--> statement-breakpoint\nVACUUM t;\n"
                     "--> statement-breakpoint\nSELECT 1;\n")
    records = [StepRecord(s.key, m1.name, m1.hash, s.text_hash) for s in old[:2]]
    assert resume_renames(m2, new, records, {}) == [
        (old[0].key, new[0].key), (old[1].key, new[1].key)]
    # a checkpoint with no progress that no longer matches is forgotten, not an error
    assert resume_renames(m2, new, [], {old[2].key: (old[2].text_hash, 0)}) == [(old[2].key, "")]

    m3, edited = _steps("ALTER TABLE t ADD COLUMN a bigint;\n--> statement-breakpoint\n"
                        "VACUUM t;\n--> statement-breakpoint\nSELECT 1;\n")
    with pytest.raises(EditedAppliedStep) as raised:
        resume_renames(m3, edited, records, {})
    assert f"{old[0].key} (applied; now step {edited[0].key} at line 1)" in raised.value.message
    assert old[1].key not in raised.value.message  # unchanged
    # records from before text hashes were kept cannot be vouched for
    legacy = [StepRecord(old[0].key, m1.name, m1.hash, None)]
    with pytest.raises(EditedAppliedStep, match="before pgshift kept step text hashes"):
        resume_renames(m2, new, legacy, {})
    # a half-done backfill whose text changed is an applied step too
    with pytest.raises(EditedAppliedStep, match="backfill, 10 rows done"):
        resume_renames(m2, new, [], {old[2].key: (old[2].text_hash, 10)})
