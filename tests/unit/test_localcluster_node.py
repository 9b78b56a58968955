"""The pure parts of localcluster's node: network names from the folder, the pause archive."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from localcluster import network
from localcluster.pause import oci_archive


def test_a_folder_always_asks_for_the_same_slot_and_names_follow_it(tmp_path: Path) -> None:
    slot = network.preferred_slot(tmp_path)
    assert slot == network.preferred_slot(tmp_path) and 1 <= slot <= network.SLOTS
    net = network.for_slot(slot)
    assert net.netns == f"lcnode-{slot}" and net.bridge == f"lcbr{slot}"
    assert net.host_ip == f"10.213.{slot}.1" and net.node_ip == f"10.213.{slot}.2"
    assert net.pod_cidr == f"10.214.{slot}.0/24" and net.pod_gateway == f"10.214.{slot}.1"
    assert len(net.host_link) <= 15 and len(net.bridge) <= 15  # IFNAMSIZ
    assert net.nsenter()[:2] == ["nsenter", f"--net=/run/netns/lcnode-{slot}"]


def test_two_folders_usually_ask_for_different_slots(tmp_path: Path) -> None:
    slots = {network.preferred_slot(tmp_path / f"c{i}") for i in range(20)}
    assert len(slots) > 15


def test_the_pause_archive_is_a_valid_oci_layout() -> None:
    data = oci_archive(b"\x7fELF binary", "localcluster.local/pause:9")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        files = {m.name: archive.extractfile(m).read() for m in archive if m.isfile()}  # type: ignore[union-attr]
    index = json.loads(files["index.json"])
    entry = index["manifests"][0]
    assert entry["annotations"]["io.containerd.image.name"] == "localcluster.local/pause:9"

    def blob(digest: str) -> bytes:
        content = files[f"blobs/sha256/{digest.split(':')[1]}"]
        assert "sha256:" + hashlib.sha256(content).hexdigest() == digest
        return content

    manifest = json.loads(blob(entry["digest"]))
    config = json.loads(blob(manifest["config"]["digest"]))
    layer = blob(manifest["layers"][0]["digest"])
    assert config["config"]["Entrypoint"] == ["/pause"]
    assert config["rootfs"]["diff_ids"] == [manifest["layers"][0]["digest"]]
    with tarfile.open(fileobj=io.BytesIO(layer)) as inner:
        member = inner.getmember("pause")
        assert member.mode == 0o755 and inner.extractfile(member).read() == b"\x7fELF binary"  # type: ignore[union-attr]
