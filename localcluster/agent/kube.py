"""The few API calls the agent makes, on plain dicts (the objects as ``kubectl get -o json``).

Responses are read raw (``_preload_content=False``) and parsed as JSON: the client's models
rename fields to snake_case and fail on some responses (Binding), and the agent only needs the
wire format.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

Obj = dict[str, Any]

#: Sent explicitly: clients differ in the patch type they pick for a dict body.
MERGE_PATCH = "application/merge-patch+json"


def _json(response: Any) -> Obj:
    return json.loads(response.data or b"{}")


class Kube:
    def __init__(self, kubeconfig: str) -> None:
        from kubernetes import config as kube_config

        self.api_client = kube_config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api_client)
        self.storage = client.StorageV1Api(self.api_client)

    def read(self, kind: str, namespace: str, name: str) -> Obj | None:
        reader = {
            "Secret": self.core.read_namespaced_secret,
            "ConfigMap": self.core.read_namespaced_config_map,
            "PersistentVolumeClaim": self.core.read_namespaced_persistent_volume_claim,
            "Pod": self.core.read_namespaced_pod,
        }[kind]
        try:
            return _json(reader(name, namespace, _preload_content=False))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def read_pv(self, name: str) -> Obj | None:
        try:
            return _json(self.core.read_persistent_volume(name, _preload_content=False))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def token(
        self, namespace: str, account: str, pod: Obj, audiences: list[str], seconds: int
    ) -> str:
        body: Obj = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": seconds,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": pod["metadata"]["name"],
                    "uid": pod["metadata"]["uid"],
                },
            },
        }
        if audiences:
            body["spec"]["audiences"] = audiences
        response = self.core.create_namespaced_service_account_token(
            account, namespace, body, _preload_content=False
        )
        return str(_json(response)["status"]["token"])

    def bind(self, namespace: str, name: str, node: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        self.core.create_namespaced_pod_binding(name, namespace, body, _preload_content=False)

    def patch_pod_status(self, namespace: str, name: str, status: Obj) -> None:
        # A JSON merge patch replaces lists whole: the agent always sends complete lists.
        self.core.patch_namespaced_pod_status(
            name, namespace, {"status": status}, _content_type=MERGE_PATCH, _preload_content=False
        )

    def patch_node(self, name: str, body: Obj, *, status: bool = False) -> None:
        patch = self.core.patch_node_status if status else self.core.patch_node
        patch(name, body, _content_type=MERGE_PATCH, _preload_content=False)

    def delete_pod_now(self, namespace: str, name: str, uid: str) -> None:
        """The kubelet's last word on a Pod: delete it with grace 0 once its processes are
        gone. Finalizers of others (the Job controller's) still hold the object until removed."""
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        try:
            self.core.delete_namespaced_pod(name, namespace, body=body, _preload_content=False)
        except ApiException as error:
            if error.status not in (404, 409):
                raise
