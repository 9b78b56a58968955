"""How Argo CD and Flux read a Migration, in every state: docs/gitops.md's table, computed.

`tools/gitops-check` (Go, built once by tools/install-go-tools.sh and cached outside the work
tree) runs `charts/pgshift/files/argocd-health.lua` with gopher-lua the way Argo CD runs a
custom health check, and kstatus (what Flux uses) on each fixture. The table in docs/gitops.md
is the expectation, so the documentation cannot drift from the behaviour.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgshift.controller import status as controller_status

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "gitops" / "fixtures"
LUA = ROOT / "charts" / "pgshift" / "files" / "argocd-health.lua"
FLUX_EXPRS = ROOT / "charts" / "pgshift" / "files" / "flux-healthcheckexprs.yaml"
DOC = ROOT / "docs" / "gitops.md"


def documented_states() -> dict[str, tuple[str, str, str]]:
    """fixture file -> (Argo CD health, kstatus, Flux with healthCheckExprs), from the table in
    docs/gitops.md."""
    text = DOC.read_text()
    block = text.split("<!-- gitops-states:begin -->", 1)[1].split("<!-- gitops-states:end -->")[0]
    rows: dict[str, tuple[str, str, str]] = {}
    for line in block.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0].strip("`")] = (cells[3], cells[4], cells[5])
    return rows


@pytest.fixture(scope="module")
def gitops_check() -> Path:
    out = subprocess.run(
        [str(ROOT / "tools" / "install-go-tools.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    binary = Path(out.stdout.strip().splitlines()[-1]) / "gitops-check"
    assert binary.is_file(), out.stderr
    return binary


@pytest.fixture(scope="module")
def verdicts(gitops_check: Path) -> dict[str, dict[str, Any]]:
    files = sorted(FIXTURES.glob("*.yaml"))
    out = subprocess.run(
        [str(gitops_check), "-lua", str(LUA), "-flux-exprs", str(FLUX_EXPRS), *map(str, files)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    reports = [json.loads(line) for line in out.stdout.splitlines()]
    return {Path(r["file"]).name: r for r in reports}


def test_every_fixture_is_documented_and_every_documented_state_has_a_fixture() -> None:
    assert sorted(documented_states()) == sorted(p.name for p in FIXTURES.glob("*.yaml"))


@pytest.mark.parametrize("fixture", sorted(documented_states()))
def test_argocd_and_flux_see_the_documented_state(
    fixture: str, verdicts: dict[str, dict[str, Any]]
) -> None:
    argocd, kstatus, flux_cel = documented_states()[fixture]
    report = verdicts[fixture]
    seen = (report["argocd"]["status"], report["kstatus"]["status"], report["fluxCEL"]["status"])
    assert seen == (argocd, kstatus, flux_cel), report
    # Both carry a message a person can act on.
    assert report["argocd"]["message"]
    assert report["kstatus"]["message"]


def test_the_states_the_issue_names_are_all_covered() -> None:
    states = documented_states()
    # new, progressing, awaiting approval, blocked by a gate, failed, ready, complete, stale.
    for name in (
        "new",
        "progressing",
        "awaiting-approval",
        "blocked-by-gate",
        "failed",
        "ready",
        "complete",
        "stale-generation",
    ):
        assert f"{name}.yaml" in states


def test_ready_means_healthy_and_current_so_the_application_may_roll_out(
    verdicts: dict[str, dict[str, Any]],
) -> None:
    """The contract Argo CD sync waves and Flux dependsOn rely on (docs/gitops.md)."""
    for name, report in verdicts.items():
        obj = yaml.safe_load((FIXTURES / name).read_text())
        st = obj.get("status") or {}
        fresh = st.get("observedGeneration") == obj["metadata"]["generation"]
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or ()
        )
        if fresh and ready:
            assert report["argocd"]["status"] == "Healthy", name
            assert report["kstatus"]["status"] == "Current", name
        else:
            assert report["argocd"]["status"] != "Healthy", name
        if st and not (fresh and ready):
            assert report["kstatus"]["status"] != "Current", name
        # with the healthCheckExprs, Flux passes a Migration exactly when it is Ready
        assert (report["fluxCEL"]["status"] == "Current") == (fresh and ready), name


def test_the_documented_flux_expressions_are_the_tested_ones() -> None:
    exprs = yaml.safe_load(FLUX_EXPRS.read_text())
    doc = DOC.read_text()
    for key in ("failed", "current"):
        assert f'{key}: "{exprs[key]}"' in doc, key


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.yaml")), ids=lambda p: p.name)
def test_fixture_conditions_follow_the_controllers_reason_table(path: Path) -> None:
    """Fixtures are what pgshift writes: the four conditions from status.py's REASONS."""
    obj = yaml.safe_load(path.read_text())
    st = obj.get("status")
    if not st:
        return
    reason = controller_status.Reason(st["phase"])
    meaning = controller_status.REASONS[reason]
    by_type = {c["type"]: c for c in st["conditions"]}
    assert sorted(by_type) == sorted(controller_status.CONDITION_TYPES)
    expected = {
        controller_status.READY: meaning.ready,
        controller_status.COMPLETE: meaning.complete,
        controller_status.RECONCILING: meaning.reconciling,
        controller_status.STALLED: meaning.stalled,
    }
    for ctype, value in expected.items():
        cond = by_type[ctype]
        assert cond["status"] == ("True" if value else "False"), (ctype, cond)
        assert cond["reason"] == reason.value
        assert cond["observedGeneration"] == st["observedGeneration"]


def test_the_health_check_needs_no_library_argo_cd_leaves_closed() -> None:
    """Argo CD opens only base, table and package for argocd-cm checks (no string, os, io)."""
    code = "\n".join(
        line for line in LUA.read_text().splitlines() if not line.lstrip().startswith("--")
    )
    assert not re.search(r"\b(string|os|io|debug|math)\.", code)


def documented_phases() -> dict[str, tuple[str, str, str]]:
    """status.phase -> (Argo CD health, kstatus, Flux with healthCheckExprs), from the
    every-phase table in docs/gitops.md."""
    text = DOC.read_text()
    block = text.split("<!-- gitops-phases:begin -->", 1)[1].split("<!-- gitops-phases:end -->")[0]
    rows: dict[str, tuple[str, str, str]] = {}
    for line in block.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for phase in cells[0].replace("`", "").split(","):
            rows[phase.strip()] = (cells[2], cells[3], cells[4])
    return rows


def phase_object(reason: controller_status.Reason) -> dict[str, Any]:
    """A Migration in `reason`, its status rendered by the controller's own `render`."""
    from pgshift.controller.memory import Memory

    held = reason in (
        controller_status.Reason.AWAITING_APPROVAL,
        controller_status.Reason.AWAITING_ROLLOUT,
        controller_status.Reason.BLOCKED_BY_GATE,
    )
    gate = {"type": "Approval", "step": "9d81e0aa42c3-0", "migration": "0004_drop", "message": "x"}
    memory = Memory(gate=gate if held else None)
    status = controller_status.render(
        reason=reason,
        message=f"{reason.value}: what pgshift says",
        memory=memory,
        generation=1,
        name="shop",
        now="2026-11-26T10:00:00Z",
        previous=None,
    )
    spec: dict[str, Any] = {
        "database": {"urlSecretRef": {"name": "shop-db"}},
        "source": {"configMap": {"name": "src"}},
        "suspend": reason is controller_status.Reason.SUSPENDED,
    }
    return {
        "apiVersion": "pgshift.dev/v1alpha1",
        "kind": "Migration",
        "metadata": {"name": "shop", "namespace": "shop", "generation": 1},
        "spec": spec,
        "status": json.loads(json.dumps(controller_status.strip_none(status))),
    }


def test_every_phase_is_documented_as_argo_cd_and_flux_see_it(
    gitops_check: Path, tmp_path: Path
) -> None:
    """Every reason the controller can write (status.phase), rendered by status.render, through
    the Argo CD health check, kstatus and Flux's healthCheckExprs: docs/gitops.md's table."""
    documented = documented_phases()
    assert sorted(documented) == sorted(r.value for r in controller_status.Reason)
    files = []
    for reason in controller_status.Reason:
        path = tmp_path / f"{reason.value}.yaml"
        path.write_text(yaml.safe_dump(phase_object(reason)))
        files.append(str(path))
    out = subprocess.run(
        [str(gitops_check), "-lua", str(LUA), "-flux-exprs", str(FLUX_EXPRS), *files],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    seen = {}
    for line in out.stdout.splitlines():
        r = json.loads(line)
        seen[Path(r["file"]).stem] = (
            r["argocd"]["status"],
            r["kstatus"]["status"],
            r["fluxCEL"]["status"],
        )
    assert seen == documented


def test_the_docs_say_what_argo_cd_shows_while_the_contract_runs() -> None:
    """docs/gitops.md once said an approved Migration "stays Healthy throughout"."""
    doc = DOC.read_text()
    assert "stays Healthy throughout" not in doc
    argocd, _, _ = documented_states()["contract-applying.yaml"]
    assert argocd == "Progressing"
    assert "Progressing while the contract step runs" in doc
