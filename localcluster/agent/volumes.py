"""A Pod's volumes, made as host folders, and each container's mounts of them.

Every volume becomes a folder (or, for a PVC, the claim's host folder) that the launcher
bind-mounts at the container's mountPath. ConfigMap, Secret, downward API and projected
volumes are written once at Pod start (no live refresh); the service-account token comes from
the TokenRequest API, bound to the Pod, like kubelet's.
"""

from __future__ import annotations

import base64
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.agent.env import field_value
from localcluster.agent.images import ImageRoots
from localcluster.agent.kube import Kube

DEFAULT_MODE = 0o644


class VolumeNotReady(Exception):
    """A volume cannot be made yet (claim unbound, ConfigMap missing): retried."""


@dataclass(frozen=True)
class Volume:
    path: Path
    read_only: bool  # ConfigMap, Secret, projected and image volumes are always read-only


@dataclass(frozen=True)
class Mount:
    """One bind mount of the launcher spec."""

    source: str
    target: str
    directory: bool
    read_only: bool

    def to_spec(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "directory": self.directory,
            "readOnly": self.read_only,
        }


def _write_files(folder: Path, files: dict[str, tuple[bytes, int]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for relative, (content, mode) in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(mode)


def _keyed(obj: dict[str, Any], kind: str) -> dict[str, bytes]:
    if kind == "Secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def _object_files(
    kube: Kube, kind: str, namespace: str, source: dict[str, Any], default_mode: int
) -> dict[str, tuple[bytes, int]]:
    name = source.get("name") or source.get("secretName") or ""
    obj = kube.read(kind, namespace, name)
    if obj is None:
        if source.get("optional"):
            return {}
        raise VolumeNotReady(f'{kind.lower()} "{name}" not found')
    data = _keyed(obj, kind)
    items = source.get("items")
    if not items:
        return {key: (value, default_mode) for key, value in data.items()}
    files = {}
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise VolumeNotReady(f"key {item['key']} not found in {kind.lower()} {name}")
        files[item["path"]] = (data[item["key"]], item.get("mode", default_mode))
    return files


def _downward_files(
    pod: dict[str, Any], items: list[dict[str, Any]], default_mode: int
) -> dict[str, tuple[bytes, int]]:
    files = {}
    for item in items:
        # resourceFieldRef: no resource accounting here, "0" as for an unset limit.
        path = item["fieldRef"]["fieldPath"] if "fieldRef" in item else None
        value = field_value(pod, path) if path else "0"
        files[item["path"]] = (value.encode(), item.get("mode", default_mode))
    return files


def _projected_files(
    kube: Kube, pod: dict[str, Any], projected: dict[str, Any]
) -> dict[str, tuple[bytes, int]]:
    namespace = pod["metadata"]["namespace"]
    default_mode = projected.get("defaultMode", DEFAULT_MODE)
    files: dict[str, tuple[bytes, int]] = {}
    for source in projected.get("sources") or []:
        if "serviceAccountToken" in source:
            spec = source["serviceAccountToken"]
            audience = spec.get("audience")
            token = kube.token(
                namespace,
                pod["spec"].get("serviceAccountName") or "default",
                pod,
                [audience] if audience else [],
                int(spec.get("expirationSeconds", 3600)),
            )
            files[spec["path"]] = (token.encode(), default_mode)
        elif "configMap" in source:
            files.update(
                _object_files(kube, "ConfigMap", namespace, source["configMap"], default_mode)
            )
        elif "secret" in source:
            files.update(_object_files(kube, "Secret", namespace, source["secret"], default_mode))
        elif "downwardAPI" in source:
            files.update(
                _downward_files(pod, source["downwardAPI"].get("items") or [], default_mode)
            )
    return files


def _claim_folder(kube: Kube, namespace: str, claim: str) -> Path:
    pvc = kube.read("PersistentVolumeClaim", namespace, claim)
    if pvc is None:
        raise VolumeNotReady(f'persistentvolumeclaim "{claim}" not found')
    volume_name = pvc.get("spec", {}).get("volumeName")
    if pvc.get("status", {}).get("phase") != "Bound" or not volume_name:
        raise VolumeNotReady(f'persistentvolumeclaim "{claim}" is not bound yet')
    pv = kube.read_pv(volume_name)
    spec = (pv or {}).get("spec", {})
    path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
    if not path:
        raise VolumeNotReady(f"volume {volume_name} is neither hostPath nor local")
    return Path(path)


def prepare(
    kube: Kube, pod: dict[str, Any], pod_dir: Path, images: ImageRoots
) -> dict[str, Volume]:
    """Make every volume of the Pod; raises VolumeNotReady to be retried."""
    namespace = pod["metadata"]["namespace"]
    made: dict[str, Volume] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        folder = pod_dir / "volumes" / name
        if "emptyDir" in volume:
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o777)  # as kubelet: any runAsUser may write an emptyDir
            made[name] = Volume(folder, read_only=False)
        elif "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]
            made[name] = Volume(
                _claim_folder(kube, namespace, claim["claimName"]),
                read_only=bool(claim.get("readOnly")),
            )
        elif "hostPath" in volume:
            path = Path(volume["hostPath"]["path"])
            if volume["hostPath"].get("type") == "DirectoryOrCreate":
                path.mkdir(parents=True, exist_ok=True)
            made[name] = Volume(path, read_only=False)
        elif "configMap" in volume or "secret" in volume:
            kind = "ConfigMap" if "configMap" in volume else "Secret"
            source = volume.get("configMap") or volume.get("secret") or {}
            mode = source.get("defaultMode", DEFAULT_MODE)
            _fresh(folder)
            _write_files(folder, _object_files(kube, kind, namespace, source, mode))
            made[name] = Volume(folder, read_only=True)
        elif "downwardAPI" in volume:
            source = volume["downwardAPI"]
            _fresh(folder)
            files = _downward_files(
                pod, source.get("items") or [], source.get("defaultMode", DEFAULT_MODE)
            )
            _write_files(folder, files)
            made[name] = Volume(folder, read_only=True)
        elif "projected" in volume:
            _fresh(folder)
            _write_files(folder, _projected_files(kube, pod, volume["projected"]))
            made[name] = Volume(folder, read_only=True)
        elif "image" in volume:
            reference = volume["image"].get("reference")
            root = images.folder_for(reference)
            if root is None:
                raise VolumeNotReady(
                    f'image "{reference}" is not in the image-roots map (LOCALCLUSTER_IMAGE_ROOTS)'
                )
            made[name] = Volume(Path(root), read_only=True)
        else:
            kinds = sorted(set(volume) - {"name"})
            raise VolumeNotReady(f"volume {name}: unsupported volume type {kinds}")
    return made


def _fresh(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    folder.chmod(0o755)


def host_target(path: str) -> str:
    """Resolve symlinks of the part of ``path`` that exists on the host (``/var/run`` is
    ``/run``), so the launcher mounts where the container will look."""
    existing, rest = path, ""
    while existing != "/" and not os.path.lexists(existing):
        existing, tail = os.path.split(existing)
        rest = f"{tail}/{rest}" if rest else tail
    resolved = os.path.realpath(existing)
    return os.path.join(resolved, rest) if rest else resolved


def container_mounts(container: dict[str, Any], volumes: dict[str, Volume]) -> list[Mount]:
    mounts = []
    for item in container.get("volumeMounts") or []:
        volume = volumes[item["name"]]
        source = volume.path / item["subPath"] if item.get("subPath") else volume.path
        if item.get("subPath") and not source.exists():
            source.mkdir(parents=True, mode=0o777)  # kubelet creates a missing subPath folder
        mounts.append(
            Mount(
                source=str(source),
                target=host_target(item["mountPath"]),
                directory=source.is_dir(),
                read_only=volume.read_only or bool(item.get("readOnly")),
            )
        )
    return mounts
