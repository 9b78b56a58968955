"""The agent: what a single-node cluster still needs beside the kubelet, a volume provisioner.

It creates the default StorageClass and provisions its claims as hostPath PersistentVolumes
(folders under the cluster's ``volumes/``), as local-path provisioners do; the kubelet mounts
them. Pods, their logs and the Node itself are the real kubelet's (``localcluster/node.py``).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from kubernetes.client.rest import ApiException

from localcluster.agent import provisioner
from localcluster.agent.kube import Kube

log = logging.getLogger("localcluster.agent")

PROVISION_POLL_SECONDS = 0.5


class Agent:
    def __init__(self, kube: Kube, workdir: Path) -> None:
        self.kube = kube
        self.volumes_dir = workdir / "volumes"
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.volumes_dir.mkdir(parents=True, exist_ok=True)
        self._create(self.kube.storage.create_storage_class, provisioner.storage_class())
        self.thread = threading.Thread(
            target=self._provision, name="agent-provisioner", daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def _provision(self) -> None:
        while not self.stopping.wait(PROVISION_POLL_SECONDS):
            try:
                provisioner.provision_once(self.kube, self.volumes_dir)
            except Exception as error:
                if not self.stopping.is_set():
                    log.warning("provisioner: %s", error)

    @staticmethod
    def _create(create: Any, body: dict[str, Any]) -> None:
        try:
            create(body, _preload_content=False)
        except ApiException as error:
            if error.status != 409:
                raise
