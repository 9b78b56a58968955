"""The Pod sandbox ("pause") image, built here: no registry is reachable.

``gcc -Os -static`` of ``build/pause/linux/pause.c`` from the kubernetes Go module (already in
the module cache for the build), put in a one-layer OCI image archive written by hand, which
``ctr images import`` reads. Cached under the cache root by the source's digest.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from localcluster import config
from localcluster.errors import LocalClusterError

PAUSE_IMAGE = "localcluster.local/pause:3.10.1"


def _source(version: str) -> Path:
    return (
        config.cache_root()
        / "go"
        / "mod"
        / "k8s.io"
        / f"kubernetes@{version}"
        / "build"
        / "pause"
        / "linux"
        / "pause.c"
    )


def _blob(blobs: dict[str, bytes], data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return digest, len(data)


def _tar_entry(out: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    out.addfile(info, io.BytesIO(data))


def oci_archive(binary: bytes, reference: str) -> bytes:
    """A one-layer OCI image layout, as a tar, whose entry point is ``/pause``. PURE."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w", format=tarfile.PAX_FORMAT) as layer:
        _tar_entry(layer, "pause", binary, 0o755)
    layer_bytes = layer_buf.getvalue()
    blobs: dict[str, bytes] = {}
    layer_digest, layer_size = _blob(blobs, layer_bytes)
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    config_digest, config_size = _blob(blobs, json.dumps(image_config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": layer_size,
            }
        ],
    }
    manifest_digest, manifest_size = _blob(blobs, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {
                    "io.containerd.image.name": reference,
                    "org.opencontainers.image.ref.name": reference.rsplit(":", 1)[-1],
                },
            }
        ],
    }
    out_buf = io.BytesIO()
    with tarfile.open(fileobj=out_buf, mode="w", format=tarfile.PAX_FORMAT) as out:
        _tar_entry(out, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}', 0o644)
        _tar_entry(out, "index.json", json.dumps(index).encode(), 0o644)
        for digest, data in blobs.items():
            _tar_entry(out, f"blobs/sha256/{digest.split(':', 1)[1]}", data, 0o644)
    return out_buf.getvalue()


def ensure_pause_archive(version: str = config.KUBERNETES_VERSION) -> Path:
    """The pause image archive, built once per pause.c content."""
    source = _source(version)
    if not source.is_file():
        raise LocalClusterError(
            f"{source} is missing: run `python -m localcluster build` (it fetches the module)"
        )
    text = source.read_bytes()
    key = hashlib.sha256(text).hexdigest()[:16]
    folder = config.cache_root() / "pause" / key
    archive = folder / "pause.oci.tar"
    if archive.is_file():
        return archive
    gcc = shutil.which("gcc")
    if not gcc:
        raise LocalClusterError(
            "gcc is not installed (it builds the pause binary): `apt-get install gcc libc6-dev`"
        )
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / "pause"
    done = subprocess.run(
        [gcc, "-Os", "-static", "-Wall", "-o", str(binary), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise LocalClusterError(f"gcc -static pause.c failed: {done.stderr.strip()[-300:]}")
    subprocess.run(["strip", str(binary)], capture_output=True, check=False)
    temporary = archive.with_suffix(".tmp")
    temporary.write_bytes(oci_archive(binary.read_bytes(), PAUSE_IMAGE))
    temporary.replace(archive)
    return archive
