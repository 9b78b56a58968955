"""The node's own network namespace, so one cluster never touches another's (or the host's).

``up`` creates a network namespace for the node and a veth pair to the host: the host end has
``host_ip`` (where Pods reach the apiserver and the tests' PostgreSQL), the node end has
``node_ip``. containerd, the CNI bridge, kubelet and kube-proxy run inside it, so the bridge,
the Pods' veths and every iptables chain kube-proxy and the CNI plugins write live and die with
the namespace. Addresses and names derive from the cluster's folder: a slot number from its
hash (the next free one if taken), giving

- link ``10.213.<slot>.0/30`` (host ``.1``, node ``.2``), pod CIDR ``10.214.<slot>.0/24``;
- netns ``lcnode-<slot>``, host veth ``lch<slot>``, bridge ``lcbr<slot>`` (inside the netns).

Pod traffic leaving the node is masqueraded to ``node_ip`` by the bridge plugin, so the host
needs no route to the pod CIDR.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from localcluster.errors import LocalClusterError

SLOTS = 250
LINK_BASE = "10.213"
POD_BASE = "10.214"
#: every node address and pod CIDR falls in these: PostgreSQL's pg_hba allows them.
NODE_NETWORKS = (f"{LINK_BASE}.0.0/16", f"{POD_BASE}.0.0/16")
NETNS_DIR = Path("/run/netns")
NODE_LINK = "lcn0"


@dataclass(frozen=True)
class NodeNetwork:
    slot: int
    netns: str
    host_link: str
    bridge: str
    host_ip: str
    node_ip: str
    pod_cidr: str

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.netns

    @property
    def pod_gateway(self) -> str:
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))

    def nsenter(self) -> list[str]:
        """The prefix that runs a command in the node's network namespace (and only that:
        ``ip netns exec`` would also remount /sys, hiding the cgroup mounts kubelet needs)."""
        return ["nsenter", f"--net={self.netns_path}", "--"]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> NodeNetwork:
        return cls(**json.loads(path.read_text()))


def for_slot(slot: int) -> NodeNetwork:
    return NodeNetwork(
        slot=slot,
        netns=f"lcnode-{slot}",
        host_link=f"lch{slot}",
        bridge=f"lcbr{slot}",
        host_ip=f"{LINK_BASE}.{slot}.1",
        node_ip=f"{LINK_BASE}.{slot}.2",
        pod_cidr=f"{POD_BASE}.{slot}.0/24",
    )


def preferred_slot(folder: Path) -> int:
    """The slot a cluster folder asks for first (1..SLOTS): stable for one folder."""
    digest = hashlib.sha256(str(folder.resolve()).encode()).digest()
    return int.from_bytes(digest[:4], "big") % SLOTS + 1


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise LocalClusterError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done


def _host_addresses() -> set[str]:
    shown = json.loads(_ip("-j", "addr", "show").stdout or "[]")
    return {a["local"] for link in shown for a in link.get("addr_info", [])}


def _link_exists(name: str) -> bool:
    return _ip("link", "show", name, check=False).returncode == 0


def _taken(net: NodeNetwork, addresses: set[str]) -> bool:
    return (
        net.netns_path.exists()
        or _link_exists(net.host_link)
        or net.host_ip in addresses
        or net.node_ip in addresses
    )


def create(folder: Path) -> NodeNetwork:
    """Create the namespace and the veth pair for the cluster in ``folder``."""
    addresses = _host_addresses()
    first = preferred_slot(folder)
    for offset in range(SLOTS):
        net = for_slot((first - 1 + offset) % SLOTS + 1)
        if not _taken(net, addresses):
            break
    else:
        raise LocalClusterError(f"no free node network slot left ({SLOTS} clusters are up?)")
    try:
        _ip("netns", "add", net.netns)
        _ip(
            "link",
            "add",
            net.host_link,
            "type",
            "veth",
            "peer",
            "name",
            NODE_LINK,
            "netns",
            net.netns,
        )
        _ip("addr", "add", f"{net.host_ip}/30", "dev", net.host_link)
        _ip("link", "set", net.host_link, "up")
        inside = ["-n", net.netns]
        _ip(*inside, "addr", "add", f"{net.node_ip}/30", "dev", NODE_LINK)
        _ip(*inside, "link", "set", NODE_LINK, "up")
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "route", "add", "default", "via", net.host_ip)
    except LocalClusterError:
        remove(net)
        raise
    return net


def remove(net: NodeNetwork) -> None:
    """Delete the namespace (the bridge, Pod veths and iptables chains in it go with it) and
    the host end of the veth pair."""
    if net.netns_path.exists():
        _ip("netns", "delete", net.netns, check=False)
    if _link_exists(net.host_link):
        _ip("link", "delete", net.host_link, check=False)


def leftovers(net: NodeNetwork) -> list[str]:
    """What of this network still exists on the host (empty after a clean ``down``)."""
    found = []
    if net.netns_path.exists():
        found.append(f"netns {net.netns}")
    if _link_exists(net.host_link):
        found.append(f"link {net.host_link}")
    if _link_exists(net.bridge):
        found.append(f"bridge {net.bridge} on the host")
    return found
