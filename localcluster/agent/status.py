"""Pure builders of a Pod's status from the states of its containers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

HOST_IP = "127.0.0.1"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerState:
    """What the agent knows of one container; ``state`` is waiting, running or terminated."""

    name: str
    image: str
    state: str = "waiting"
    reason: str = "ContainerCreating"
    message: str = ""
    exit_code: int = 0
    started_at: str = ""
    finished_at: str = ""
    restart_count: int = 0
    container_id: str = ""
    last_terminated: dict[str, Any] | None = field(default=None)

    @property
    def succeeded(self) -> bool:
        return self.state == "terminated" and self.exit_code == 0

    def terminated_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at or self.finished_at,
            "finishedAt": self.finished_at,
            "containerID": self.container_id,
        }
        if self.message:
            body["message"] = self.message
        return body

    def to_status(self) -> dict[str, Any]:
        if self.state == "running":
            state: dict[str, Any] = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            state = {"terminated": self.terminated_dict()}
        else:
            waiting: dict[str, Any] = {"reason": self.reason}
            if self.message:
                waiting["message"] = self.message
            state = {"waiting": waiting}
        body: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.state == "running",
            "started": self.state == "running",
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.container_id:
            body["containerID"] = self.container_id
        return body


def phase(init: list[ContainerState], main: list[ContainerState], restart_policy: str) -> str:
    """Pod phase by kubelet's rules for restartPolicy Never and OnFailure (Always never ends)."""
    for container in init:
        if container.state == "terminated" and not container.succeeded:
            return "Failed" if restart_policy == "Never" else "Pending"
        if not container.succeeded:
            return "Pending"
    if main and all(c.state == "terminated" for c in main):
        if all(c.succeeded for c in main):
            return "Running" if restart_policy == "Always" else "Succeeded"
        return "Failed" if restart_policy != "Always" else "Running"
    if any(c.state in ("running", "terminated") for c in main):
        return "Running"
    return "Pending"


def _condition(kind: str, ok: bool, since: str, reason: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": kind,
        "status": "True" if ok else "False",
        "lastProbeTime": None,
        "lastTransitionTime": since,
    }
    if reason and not ok:
        body["reason"] = reason
    return body


def pod_status(
    init: list[ContainerState],
    main: list[ContainerState],
    restart_policy: str,
    start_time: str,
    *,
    override_phase: str | None = None,
    reason: str = "",
    message: str = "",
) -> dict[str, Any]:
    current = override_phase or phase(init, main, restart_policy)
    initialized = all(c.succeeded for c in init)
    ready = current == "Running" and all(c.state == "running" for c in main)
    terminal = current in ("Succeeded", "Failed")
    since = now()
    status: dict[str, Any] = {
        "phase": current,
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": HOST_IP,
        "podIPs": [{"ip": HOST_IP}],
        "startTime": start_time,
        # No qosClass: the apiserver sets it at creation from the resources and refuses changes.
        "conditions": [
            _condition("PodReadyToStartContainers", not terminal, since),
            _condition("Initialized", initialized, since, "ContainersNotInitialized"),
            _condition("Ready", ready, since, "PodCompleted" if terminal else "ContainersNotReady"),
            _condition(
                "ContainersReady",
                ready,
                since,
                "PodCompleted" if terminal else "ContainersNotReady",
            ),
            _condition("PodScheduled", True, start_time),
        ],
        "initContainerStatuses": [c.to_status() for c in init],
        "containerStatuses": [c.to_status() for c in main],
    }
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return status


def same_status(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    """Equal but for transition times, so an unchanged status is not patched again."""
    if a is None:
        return False

    def strip(status: dict[str, Any]) -> dict[str, Any]:
        conditions = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"}
            for c in status.get("conditions", [])
        ]
        return {**status, "conditions": conditions}

    return strip(a) == strip(b)
