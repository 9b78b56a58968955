"""The Node object the agent stands for, and its heartbeat."""

from __future__ import annotations

import os
import platform
from typing import Any

from localcluster import config
from localcluster.agent.status import now

NODE_LABELS = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}


def _memory_kib() -> int:
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 0


def node_object(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {**NODE_LABELS, "kubernetes.io/hostname": name}},
        "spec": {},
    }


def node_status(kubelet_port: int) -> dict[str, Any]:
    stamp = now()
    capacity = {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{_memory_kib()}Ki",
        "pods": "110",
        "ephemeral-storage": "100Gi",
    }

    def condition(kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": "True" if ok else "False",
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }

    return {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            condition("MemoryPressure", False, "KubeletHasSufficientMemory", "local agent"),
            condition("DiskPressure", False, "KubeletHasNoDiskPressure", "local agent"),
            condition("PIDPressure", False, "KubeletHasSufficientPID", "local agent"),
            condition("Ready", True, "KubeletReady", "localcluster agent is posting ready status"),
        ],
        # Only InternalIP: the apiserver (--kubelet-preferred-address-types) dials it for logs.
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {
            "machineID": "localcluster",
            "systemUUID": "localcluster",
            "bootID": "localcluster",
            "kernelVersion": platform.release(),
            "osImage": "localcluster (host processes)",
            "containerRuntimeVersion": "localcluster://0",
            "kubeletVersion": config.KUBERNETES_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }
