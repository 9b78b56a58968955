"""The default StorageClass and its provisioner: one host folder per claim, as local-path does.

The PV binder (in kube-controller-manager) marks a claim of an external provisioner's class
with ``volume.kubernetes.io/storage-provisioner``; the agent then creates a hostPath PV
pre-bound to the claim, and the binder binds both. Binding is Immediate because there is no
scheduler to trigger WaitForFirstConsumer. A Released volume's folder and PV are deleted.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from kubernetes.client.rest import ApiException

from localcluster.agent.kube import Kube

log = logging.getLogger("localcluster.agent")

PROVISIONER = "localcluster.pgshift.dev/host-path"
STORAGE_CLASS = "standard"
PROVISIONER_ANNOTATIONS = (
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",
)


def storage_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def claim_folder(root: Path, claim: dict[str, Any]) -> Path:
    meta = claim["metadata"]
    return root / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"


def volume_for(claim: dict[str, Any], folder: Path) -> dict[str, Any]:
    meta = claim["metadata"]
    spec = claim["spec"]
    size = (spec.get("resources") or {}).get("requests", {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{meta['uid']}",
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": spec.get("storageClassName") or STORAGE_CLASS,
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "hostPath": {"path": str(folder), "type": "Directory"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


def provision_once(kube: Kube, root: Path) -> None:
    """One pass: provision waiting claims, delete released volumes."""
    claims = kube.core.list_persistent_volume_claim_for_all_namespaces(_preload_content=False)
    for claim in _items(claims):
        annotations = claim["metadata"].get("annotations") or {}
        if (
            claim.get("spec", {}).get("volumeName")
            or claim.get("status", {}).get("phase") != "Pending"
        ):
            continue
        if not any(annotations.get(key) == PROVISIONER for key in PROVISIONER_ANNOTATIONS):
            continue
        folder = claim_folder(root, claim)
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)  # as local-path: any runAsUser may write its claim
        try:
            kube.core.create_persistent_volume(volume_for(claim, folder), _preload_content=False)
        except ApiException as error:
            if error.status != 409:
                raise
    for volume in _items(kube.core.list_persistent_volume(_preload_content=False)):
        annotations = volume["metadata"].get("annotations") or {}
        if annotations.get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
            continue
        if volume.get("status", {}).get("phase") not in ("Released", "Failed"):
            continue
        if volume["spec"].get("persistentVolumeReclaimPolicy") != "Delete":
            continue
        path = Path(volume["spec"]["hostPath"]["path"])
        if path.is_relative_to(root):
            shutil.rmtree(path, ignore_errors=True)
        try:
            kube.core.delete_persistent_volume(volume["metadata"]["name"], _preload_content=False)
        except ApiException as error:
            if error.status != 404:
                raise


def _items(response: Any) -> list[dict[str, Any]]:
    import json

    return list(json.loads(response.data).get("items") or [])
