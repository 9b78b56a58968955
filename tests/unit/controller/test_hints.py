"""Every recovery line pgshift writes leads somewhere that exists for the one who reads it.

- every Reason has a hint (controller/hints.py, REASON_HINTS): a new reason without one fails
  here, naming it;
- what a Migration's user reads (REASON_HINTS, OPERATOR_HINTS, the Pod failure table, status
  .recovery) names only annotations `controller/api.py` defines, spec and status fields the CRD
  has, `kubectl pgshift` verbs the plugin has, and no `pgshift` CLI flag outside a `pgshift
  VERB` command that takes it;
- what a CLI user reads (every error class's hint, the out-of-order hint of each layout) names
  only verbs and flags `cli.build_parser` has.
"""

from __future__ import annotations

import argparse
import functools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

import pgshift.errors as errors
from pgshift import cli, kubectl_plugin
from pgshift.contract.reasons import FAILURE_REASONS, UNKNOWN_MARK_APPLIED, Reason
from pgshift.controller import api, hints, pod_failures
from pgshift.controller.memory import Failure, Memory
from pgshift.controller.status import REASONS, recovery
from pgshift.engine.state import out_of_order_hint
from pgshift.migrations.model import Layout

ROOT = Path(__file__).resolve().parents[3]
CRD = ROOT / "manifests" / "crd" / "pgshift.dev_migrations.yaml"


# --- what exists ---------------------------------------------------------------------------


@functools.cache
def _schema() -> Mapping[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def crd_has(path: str) -> bool:
    """`spec.a.b` or `status.a` names a property of the CRD; `<x>` stands for a map key."""
    node: Mapping[str, Any] = _schema()
    for part in path.split("."):
        if node.get("x-kubernetes-preserve-unknown-fields"):
            return True  # free-form below (job.resources, progress)
        props = node.get("properties") or {}
        if part in props:
            node = props[part]
        elif part.startswith("<") and isinstance(node.get("additionalProperties"), Mapping):
            node = node["additionalProperties"]
        else:
            return False
    return True


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings if o.startswith("--")}


VERBS = _subparsers(cli.build_parser())
VERB_FLAGS = {verb: _flags(p) for verb, p in VERBS.items()}
ALL_FLAGS = set().union(*VERB_FLAGS.values())
PLUGIN_VERBS = set(_subparsers(kubectl_plugin.parser()))
#: kubectl's own flags a hint may use (kubectl annotate ... --overwrite).
KUBECTL_FLAGS = {"--overwrite"}

_COMMAND = re.compile(r"kubectl pgshift (?P<plugin>[a-z-]+)|kubectl (?P<kubectl>[a-z]+)|"
                      r"(?<![\w./-])pgshift (?P<verb>[a-z][a-z-]*)")  # fmt: skip
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
_ANNOTATION = re.compile(r"pgshift\.dev/[a-z]+(?:-[a-z]+)*")
_FIELD = re.compile(r"(?<![\w.])(?:spec|status)\.[A-Za-z<>_.-]*[A-Za-z]")
#: prose, not a command: "another pgshift run holds the lock".
_PROSE = {"run", "runs"}


def problems_in(text: str, *, cli_user: bool) -> list[str]:
    """What `text` names that does not exist for its reader."""
    found = [
        f"annotation {a} (controller/api.py ACTION_ANNOTATIONS)"
        for a in _ANNOTATION.findall(text)
        if a not in api.ACTION_ANNOTATIONS
    ]
    found += [f"field {f} (not in the CRD)" for f in _FIELD.findall(text) if not crd_has(f)]
    for segment in re.split(r"[;|`]", text):
        commands = list(_COMMAND.finditer(segment))
        for c in commands:
            if c["plugin"] and c["plugin"] not in PLUGIN_VERBS:
                found.append(f"kubectl pgshift {c['plugin']} (no such plugin verb)")
            if c["verb"] and c["verb"] not in VERBS and c["verb"] not in _PROSE:
                found.append(f"pgshift {c['verb']} (no such CLI verb)")
        for flag in _FLAG.finditer(segment):
            before = [c for c in commands if c.start() < flag.start()]
            name = flag.group()
            if before and before[-1]["kubectl"]:
                ok = name in KUBECTL_FLAGS
            elif before and before[-1]["verb"] in VERB_FLAGS:
                ok = name in VERB_FLAGS[before[-1]["verb"]]
            else:
                # a bare flag: only a CLI user can pass it, and only one that exists.
                ok = cli_user and name in ALL_FLAGS
            if not ok:
                found.append(f"flag {name}")
    return found


# --- what a Migration's user reads -------------------------------------------------------------

GATES = ({"type": "Approval", "migration": "0003_drop", "step": "c1-0"},
         {"type": "Destructive", "migration": "0003_drop", "step": "c1-0"},
         {"type": "Rollout", "migration": "0003_drop", "step": "c1-0"}, None)  # fmt: skip


def contexts(reason: Reason) -> Iterator[hints.HintContext]:
    """The contexts a reason is written in: each failure code that stalls with it, each gate."""
    codes = [code for code, r in FAILURE_REASONS.items() if r is reason]
    for code in codes or [""]:
        failure = Failure(code=code, message="m", retryable=False, migration="0002_x")
        for gate in GATES:
            yield hints.HintContext(name="shop", failure=failure if code else None, gate=gate)


def test_every_reason_has_a_hint() -> None:
    missing = sorted(r.value for r in Reason if r not in hints.REASON_HINTS)
    assert missing == [], f"reasons without a hint in controller/hints.py REASON_HINTS: {missing}"
    assert set(REASONS) == set(Reason)


@pytest.mark.parametrize("reason", list(Reason), ids=str)
def test_each_reason_hint_names_only_what_exists_for_a_migration_user(reason: Reason) -> None:
    for context in contexts(reason):
        lines = hints.hints(reason, context)
        assert lines and all(line.strip() for line in lines), f"{reason}: an empty hint"
        memory = Memory(failure=context.failure, gate=context.gate)
        shown = [*lines, *recovery(reason, "shop", memory)]
        bad = [p for line in shown for p in problems_in(line, cli_user=False)]
        assert bad == [], f"{reason} ({context.failure and context.failure.code}): {bad}"


def test_a_stalled_reason_never_offers_only_a_retry() -> None:
    """A retry plans again and meets the same wall unless something else changed: every stalled
    reason says what to change first (DestructiveDenied once offered retry alone)."""
    for reason in (r for r in Reason if REASONS[r].stalled):
        for context in contexts(reason):
            lines = hints.hints(reason, context)
            assert not all(line.startswith("kubectl annotate") and "retry" in line
                           for line in lines), reason  # fmt: skip


def test_operator_hints_and_pod_failure_hints_name_only_what_exists() -> None:
    texts = {f"OPERATOR_HINTS[{c}]": h for c, h in hints.OPERATOR_HINTS.items()}
    texts |= {f"pod_failures {row.code}": row.hint for row in pod_failures.TABLE}
    bad = {k: problems_in(v, cli_user=False) for k, v in texts.items()}
    assert {k: v for k, v in bad.items() if v} == {}


def _error_classes(base: type[errors.PgshiftError]) -> Iterator[type[errors.PgshiftError]]:
    for sub in base.__subclasses__():
        yield sub
        yield from _error_classes(sub)


def test_every_runner_hint_naming_a_cli_flag_has_an_operator_hint() -> None:
    """A runner error whose hint tells a CLI user to pass a flag reaches a Migration's status
    with the operator's way instead (fold.py through hints.operator_hint)."""
    needs = sorted(
        cls.code
        for cls in _error_classes(errors.PgshiftError)
        if problems_in(cls.hint, cli_user=False) and cls.code not in hints.OPERATOR_HINTS
    )
    assert needs == []
    for code, text in hints.OPERATOR_HINTS.items():
        shown = hints.operator_hint(code, "pass --allow-drift", "0002_x")
        assert "{m}" not in shown and (text == shown or "0002_x" in shown)


# --- what a CLI user reads ---------------------------------------------------------------------


def test_every_error_hint_names_only_cli_verbs_and_flags_that_exist() -> None:
    bad = {
        cls.__name__: problems_in(cls.hint, cli_user=True)
        for cls in _error_classes(errors.PgshiftError)
        if cls.hint
    }
    assert {k: v for k, v in bad.items() if v} == {}


@pytest.mark.parametrize("layout", [Layout.DRIZZLE, Layout.DRIZZLE_V1, Layout.PLAIN], ids=str)
def test_out_of_order_hint_per_layout_names_mark_applied(layout: Layout) -> None:
    text = out_of_order_hint(layout, "0002_x", "0003_y")
    assert "pgshift mark-applied 0002_x" in text
    assert problems_in(text, cli_user=True) == []
    # a journal orders by its entries: renaming the file is no way out there.
    assert ("rename it" in text) is (layout is not Layout.DRIZZLE)


def test_the_checker_catches_what_does_not_exist() -> None:
    """The checks themselves: the hints once written that named nothing."""
    assert problems_in("pass --allow-drift to accept the change", cli_user=False)
    assert problems_in("check spec.source.path", cli_user=False)
    assert problems_in("kubectl annotate migration/x pgshift.dev/alow-drift=a", cli_user=False)
    assert problems_in("run `pgshift frobnicate`", cli_user=True)
    assert problems_in("pass --allow-everything", cli_user=True)
    assert not problems_in("`pgshift restore --from FILE --clean`", cli_user=False)
    retry = "kubectl annotate migration/x pgshift.dev/retry=1 --overwrite"
    assert not problems_in(retry, cli_user=False)
    assert crd_has("spec.overrides.<migration>.allow") and not crd_has("spec.nope")


def test_every_action_annotation_of_the_api_is_one_a_hint_may_name() -> None:
    defined = {v for k, v in vars(api).items() if k.startswith("ANNOTATION_")}
    assert defined == set(api.ACTION_ANNOTATIONS)


# --- docs/operator.md's recovery table ----------------------------------------------------------

OPERATOR_MD = ROOT / "docs" / "operator.md"


def recovery_rows() -> list[tuple[str, str]]:
    text = OPERATOR_MD.read_text()
    section = text.split("\n## Recovery\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in row.strip("|").split(" | ")] for row in rows[2:]]
    return [(c[0], c[1]) for c in cells]


def test_the_recovery_table_answers_every_reason_a_person_must_act_on() -> None:
    """Every stalled or gated reason has its row; every row names reasons that exist (or the
    one situation that is no reason: a bad change applied)."""
    named: set[str] = set()
    for seen, _ in recovery_rows():
        words = set(re.findall(r"`([A-Z][A-Za-z]+)`", seen))
        reasons = {w for w in words if w in {r.value for r in Reason}}
        assert reasons or seen == "a bad change applied", f"row names no reason: {seen}"
        named |= reasons
    # every reason whose status.recovery is not empty: the stalled ones, gates, waits.
    wanted = {r.value for r in Reason if r not in hints.QUIET}
    assert len(recovery_rows()) > 20 and wanted - named == set()


def test_the_recovery_table_names_only_actions_that_exist() -> None:
    bad = {seen: problems_in(do, cli_user=False) for seen, do in recovery_rows()}
    assert {k: v for k, v in bad.items() if v} == {}


# --- through the state machine: what a stalled Migration says -----------------------------------


def _runner_hint(code: str) -> str:
    return next((c.hint for c in _error_classes(errors.PgshiftError) if c.code == code), "")


# UnknownMarkApplied comes from a mark-applied Job only (test_decide.py drives it).
@pytest.mark.parametrize("code", sorted(set(FAILURE_REASONS) - {UNKNOWN_MARK_APPLIED}), ids=str)
def test_a_stalled_failure_of_each_code_names_only_what_exists(code: str) -> None:
    """A failed apply Job of each code, with the runner's own hint: the hint status keeps, the
    stall message's `then:` and status.recovery name nothing a Migration's user cannot do."""
    from pgshift.controller.decide import decide
    from pgshift.controller.status import render
    from tests.unit.controller.test_decide import E1, finished, observe, plan_result, step

    d = decide(observe())
    d = step(d.memory, job=finished(d, plan_result(E1)))
    failed = {
        "ok": False,
        "failure": {"code": code, "migration": "0001_add", "message": "m",
                    "hint": _runner_hint(code), "retryable": False},
    }  # fmt: skip
    d = step(d.memory, job=finished(d, failed, ok=False))
    assert d.memory.failure is not None, code  # stalled, or waiting to retry
    status = render(
        reason=d.reason, message=d.message, memory=d.memory, generation=1, name="shop",
        now="T0", previous=None,
    )  # fmt: skip
    then = d.message.split("| then: ")[1] if "| then: " in d.message else ""
    shown = [d.memory.failure.hint, then, *(status.get("recovery") or ())]
    bad = [p for text in shown for p in problems_in(text, cli_user=False)]
    assert bad == [], f"{code}: {bad}"


def test_an_unreadable_summary_names_the_image_field_that_exists() -> None:
    from pgshift.controller.decide import decide
    from tests.unit.controller.test_decide import E1, finished, observe, plan_result, step

    d = decide(observe())
    d = step(d.memory, job=finished(d, plan_result(E1)))
    d = step(d.memory, job=finished(d, {"schema": 99, "command": "apply", "ok": True}))
    assert d.memory.failure is not None and "spec.job.image" in d.memory.failure.hint
    assert problems_in(d.memory.failure.hint, cli_user=False) == []


def test_the_gitops_fixtures_show_the_recovery_the_controller_writes() -> None:
    from pgshift.controller.memory import from_status

    for path in sorted((ROOT / "tests" / "gitops" / "fixtures").glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        status = body.get("status") or {}
        if "phase" not in status:
            continue
        written = recovery(Reason(status["phase"]), body["metadata"]["name"], from_status(status))
        assert (status.get("recovery") or []) == written, path.name
