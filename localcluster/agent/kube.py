"""The agent's API client (the provisioner reads responses raw: ``_preload_content=False``)."""

from __future__ import annotations

from kubernetes import client


class Kube:
    def __init__(self, kubeconfig: str) -> None:
        from kubernetes import config as kube_config

        self.api_client = kube_config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api_client)
        self.storage = client.StorageV1Api(self.api_client)
