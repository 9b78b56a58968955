"""pod_failures.TABLE, one test per row: what the kubelet reports -> what status says. No cluster.

Pods are written as the apiserver returns them (the JSON a real kubelet's status has: the e2e
tests in tests/e2e/test_pod_failures.py make a real kubelet produce each of them).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from pgshift.controller import pod_failures as pf
from pgshift.controller.decide import decide
from pgshift.controller.intent import Action
from pgshift.controller.memory import Memory
from pgshift.controller.observe import JobPhase, JobState
from pgshift.controller.status import REASONS, Reason
from tests.unit.controller.test_decide import finished, observe, plan_result, step

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
E1 = {"key": "e1-0", "migration": "0001_add", "phase": "expand", "destructive": False}


def pod(
    *,
    waiting: str = "",
    message: str = "",
    terminated: dict[str, Any] | None = None,
    init: dict[str, Any] | None = None,
    age: float = 5,
) -> dict[str, Any]:
    created = (NOW - dt.timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    state: dict[str, Any] = {}
    if waiting:
        state = {"waiting": {"reason": waiting, "message": message}}
    if terminated is not None:
        state = {"terminated": terminated}
    status: dict[str, Any] = {"containerStatuses": [{"name": "runner", "state": state}]}
    if init is not None:
        status["initContainerStatuses"] = [{"name": "copy-source", "state": init}]
    return {"metadata": {"creationTimestamp": created}, "status": status}


def running_job(verdict: pf.PodVerdict) -> JobState:
    return JobState(
        name="shop-1-apply",
        action=Action.APPLY,
        phase=JobPhase.FAILED if verdict.terminal else JobPhase.RUNNING,
        reason=verdict.reason,
        message=verdict.message,
    )


def after_plan() -> Memory:
    d = decide(observe())
    return step(d.memory, job=finished(d, plan_result(E1))).memory


def test_every_row_code_has_a_reason_and_hint() -> None:
    for row in pf.TABLE:
        assert row.hint
    for code in pf.STALL_CODES:
        assert pf.hint_for(code)


def test_err_image_never_pull_stalls_with_image_unavailable() -> None:
    for reason in ("ErrImageNeverPull", "InvalidImageName"):
        msg = 'Container image "registry.example/nope:1" is not present with pull policy of Never'
        verdict = pf.classify([pod(waiting=reason, message=msg)], NOW)
        assert verdict and verdict.terminal and verdict.reason == "ImageUnavailable"
        r = step(after_plan(), job=running_job(verdict))
        assert r.reason is Reason.IMAGE_UNAVAILABLE and REASONS[r.reason].stalled
        assert "registry.example/nope:1" in r.message and "spec.job.image" in r.message


def test_image_pull_backoff_reconciles_for_the_grace_period_then_stalls() -> None:
    young = pf.classify([pod(waiting="ImagePullBackOff", message="Back-off pulling")], NOW)
    assert young and not young.terminal and young.wake_after
    r = step(after_plan(), job=running_job(young))
    assert r.run is None and REASONS[r.reason].reconciling and not REASONS[r.reason].stalled
    assert "waits for its image" in r.message
    old = pf.classify([pod(waiting="ImagePullBackOff", age=pf.PULL_GRACE_SECONDS + 1)], NOW)
    assert old and old.terminal
    # the client's serialized models write "+00:00" instead of "Z": the same age.
    late = pod(waiting="ImagePullBackOff", age=pf.PULL_GRACE_SECONDS + 1)
    late["metadata"]["creationTimestamp"] = late["metadata"]["creationTimestamp"][:-1] + "+00:00"
    verdict = pf.classify([late], NOW)
    assert verdict and verdict.terminal
    assert step(after_plan(), job=running_job(old)).reason is Reason.IMAGE_UNAVAILABLE


def test_a_failed_init_container_stalls_with_source_unreadable_and_its_log_tail() -> None:
    cp_error = "cp: cannot stat '/nope/.': No such file or directory\n"
    init = {"terminated": {"exitCode": 1, "reason": "Error", "message": cp_error}}
    verdict = pf.classify([pod(init=init, waiting="PodInitializing")], NOW)
    assert verdict and verdict.terminal and verdict.reason == "SourceUnreadable"
    r = step(after_plan(), job=running_job(verdict))
    assert r.reason is Reason.SOURCE_UNREADABLE and REASONS[r.reason].stalled
    assert "cannot stat '/nope/.'" in r.message and "spec.source.image.path" in r.message


def test_a_deadline_resumes_and_stalls_only_after_repeats_without_step_progress() -> None:
    def deadline(memory: Memory, key: str) -> Any:
        job = JobState("shop-1-apply", Action.APPLY, JobPhase.FAILED, reason="DeadlineExceeded")
        memory = replace(memory, current_step={"key": key})
        return step(memory, job=job)

    r = deadline(after_plan(), "e1-0")
    assert r.memory.failure and r.memory.failure.retryable and not REASONS[r.reason].stalled
    # progress: a later step each time, so it keeps resuming.
    for n in range(pf.DEADLINE_LIMIT + 2):
        r = deadline(r.memory, f"step-{n}")
        assert r.memory.failure and r.memory.failure.retryable, n
    # no progress: the same step again and again stalls.
    for _ in range(pf.DEADLINE_LIMIT):
        r = deadline(r.memory, "stuck-0")
    assert r.reason is Reason.DEADLINE_EXCEEDED and REASONS[r.reason].stalled
    assert "activeDeadlineSeconds" in r.message


def test_oom_killed_resumes_once_then_stalls_with_out_of_memory() -> None:
    term = {"exitCode": 137, "reason": "OOMKilled"}
    verdict = pf.classify([pod(terminated=term)], NOW)
    assert verdict and verdict.terminal and verdict.reason == "OutOfMemory"
    first = step(after_plan(), job=running_job(verdict))
    assert first.memory.failure and first.memory.failure.retryable
    assert not REASONS[first.reason].stalled
    second = step(first.memory, job=running_job(verdict))
    assert second.reason is Reason.OUT_OF_MEMORY and REASONS[second.reason].stalled
    assert "spec.job.resources" in second.message


def test_create_container_config_error_for_a_missing_secret_key_waits() -> None:
    msg = "couldn't find key DATABASE_URL in Secret ns/app-db"
    verdict = pf.classify([pod(waiting="CreateContainerConfigError", message=msg)], NOW)
    assert verdict and not verdict.terminal
    r = step(after_plan(), job=running_job(verdict))
    assert r.reason is Reason.SECRET_NOT_FOUND and REASONS[r.reason].reconciling
    assert "DATABASE_URL" in r.message


def test_create_container_config_error_of_another_kind_stalls_with_its_name() -> None:
    msg = "container has runAsNonRoot and image will run as root"
    verdict = pf.classify([pod(waiting="CreateContainerConfigError", message=msg)], NOW)
    assert verdict and verdict.terminal and verdict.reason == "ContainerConfigError"
    r = step(after_plan(), job=running_job(verdict))
    assert r.reason is Reason.CONTAINER_CONFIG_ERROR and REASONS[r.reason].stalled
    assert "runAsNonRoot" in r.message


def test_a_running_pod_is_no_failure() -> None:
    assert pf.classify([pod(terminated=None)], NOW) is None
    assert pf.classify([pod(waiting="ContainerCreating")], NOW) is None
