"""The agent: registers the Node, binds and runs Pods, provisions claims, serves logs."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import watch
from kubernetes.client.rest import ApiException

from localcluster.agent import node as nodes
from localcluster.agent import provisioner
from localcluster.agent.images import ImageRoots
from localcluster.agent.kube import Kube
from localcluster.agent.logs_server import LogsServer
from localcluster.agent.pods import NodeContext, PodWorker
from localcluster.processes import kill_group

log = logging.getLogger("localcluster.agent")

NODE_NAME = "localcluster"
HEARTBEAT_SECONDS = 20.0
PROVISION_POLL_SECONDS = 0.5
WATCH_TIMEOUT_SECONDS = 30


class Agent:
    def __init__(
        self, kube: Kube, workdir: Path, api_port: int, cluster_id: str, pki_dir: Path
    ) -> None:
        self.kube = kube
        self.volumes_dir = workdir / "volumes"
        self.context = NodeContext(
            kube=kube,
            node_name=NODE_NAME,
            pods_dir=workdir / "pods",
            images=ImageRoots(workdir / "image-roots.json"),
            api_port=api_port,
            cluster_id=cluster_id,
        )
        self.logs = LogsServer(self.find, pki_dir / "kubelet.crt", pki_dir / "kubelet.key")
        self.workers: dict[str, PodWorker] = {}
        self.finalized: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        self.context.pods_dir.mkdir(parents=True, exist_ok=True)
        self.volumes_dir.mkdir(parents=True, exist_ok=True)
        self.logs.start()
        self._create(self.kube.storage.create_storage_class, provisioner.storage_class())
        self._create(self.kube.core.create_node, nodes.node_object(NODE_NAME))
        # The NodeTaint admission put not-ready on the new Node; the node lifecycle controller
        # that would lift it does not run here, so the agent lifts it with the Ready status.
        self.kube.patch_node(NODE_NAME, {"spec": {"taints": None}})
        self._heartbeat()
        for target, name in (
            (self._watch_pods, "pods"),
            (self._provision, "provisioner"),
            (self._beat, "heartbeat"),
        ):
            thread = threading.Thread(target=target, name=f"agent-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            for running in list(worker.running.values()):
                kill_group(running.process.pid, timeout=2.0)
        self.logs.stop()

    def find(self, namespace: str, name: str) -> PodWorker | None:
        with self.lock:
            matches = [
                w for w in self.workers.values() if w.namespace == namespace and w.pod_name == name
            ]
        return matches[-1] if matches else None

    # -- loops ---------------------------------------------------------------------------------

    def _watch_pods(self) -> None:
        version: str | None = None
        while not self.stopping.is_set():
            try:
                if version is None:
                    version = self._relist()
                stream = watch.Watch().stream(
                    self.kube.core.list_pod_for_all_namespaces,
                    resource_version=version,
                    timeout_seconds=WATCH_TIMEOUT_SECONDS,
                    allow_watch_bookmarks=True,
                )
                for event in stream:
                    raw = event["raw_object"]
                    if event["type"] == "ERROR":
                        version = None
                        break
                    version = raw["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self._on_pod(event["type"], raw)
                    if self.stopping.is_set():
                        return
            except ApiException as error:
                if error.status != 410:
                    log.warning("pod watch: %s", error.reason)
                version = None
                time.sleep(0.2)
            except Exception:
                if self.stopping.is_set():
                    return
                log.exception("pod watch failed; listing again")
                version = None
                time.sleep(1.0)

    def _relist(self) -> str:
        listed = json.loads(self.kube.core.list_pod_for_all_namespaces(_preload_content=False).data)
        present = set()
        for pod in listed["items"]:
            present.add(pod["metadata"]["uid"])
            self._on_pod("ADDED", pod)
        with self.lock:
            gone = [uid for uid in self.workers if uid not in present]
        for uid in gone:
            self._forget(uid)
        return str(listed["metadata"]["resourceVersion"])

    def _provision(self) -> None:
        while not self.stopping.wait(PROVISION_POLL_SECONDS):
            try:
                provisioner.provision_once(self.kube, self.volumes_dir)
            except Exception as error:
                if not self.stopping.is_set():
                    log.warning("provisioner: %s", error)

    def _beat(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                self._heartbeat()
            except Exception as error:
                if not self.stopping.is_set():
                    log.warning("node heartbeat: %s", error)

    def _heartbeat(self) -> None:
        body = {"status": nodes.node_status(self.logs.port)}
        self.kube.patch_node(NODE_NAME, body, status=True)

    # -- pods ----------------------------------------------------------------------------------

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        uid = meta["uid"]
        if kind == "DELETED":
            self._forget(uid)
            return
        deleting = bool(meta.get("deletionTimestamp"))
        if not spec.get("nodeName"):
            if (
                not deleting
                and spec.get("schedulerName", "default-scheduler") == "default-scheduler"
            ):
                self._bind(meta["namespace"], meta["name"])
            return
        if spec["nodeName"] != NODE_NAME:
            return
        with self.lock:
            worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            if deleting and worker.finished.is_set():
                self._finalize(pod)
            return
        if deleting or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            if deleting:
                self._finalize(pod)
            return
        worker = PodWorker(self.context, pod)
        with self.lock:
            self.workers[uid] = worker
        worker.start()

    def _bind(self, namespace: str, name: str) -> None:
        try:
            self.kube.bind(namespace, name, NODE_NAME)
        except ApiException as error:
            if error.status not in (404, 409):
                log.warning("bind %s/%s: %s", namespace, name, error.reason)

    def _finalize(self, pod: dict[str, Any]) -> None:
        """Delete with grace 0 a terminating Pod whose processes are gone, once."""
        meta = pod["metadata"]
        if meta["uid"] in self.finalized:
            return
        self.finalized.add(meta["uid"])
        self.kube.delete_pod_now(meta["namespace"], meta["name"], meta["uid"])

    def _forget(self, uid: str) -> None:
        with self.lock:
            worker = self.workers.pop(uid, None)
        self.finalized.discard(uid)
        if worker is None:
            return
        worker.deleting.set()

        def clean() -> None:
            worker.join(timeout=60)
            worker.remove_files()

        threading.Thread(target=clean, name=f"clean-{uid}", daemon=True).start()

    @staticmethod
    def _create(create: Any, body: dict[str, Any]) -> None:
        try:
            create(body, _preload_content=False)
        except ApiException as error:
            if error.status != 409:
                raise
