"""The real node: containerd + runc, CNI bridge, kubelet and kube-proxy in the node's netns.

Everything lives in the cluster's folder ``D/node``: containerd's root, state, socket and runc
state, the CNI configuration and IPAM data, kubelet's root dir and Pod logs. Pods' cgroups sit
under a cgroup root of their own (``/localcluster-<id>``) in every hierarchy, so two clusters'
kubelets never see (or clean up) each other's Pods. ``stop`` removes what a kubelet leaves on
the host: container processes (by cgroup), shims (by the process marker), mounts under D,
the cgroups, ``/var/log/containers`` links, and the network namespace (which takes the bridge,
Pod veths and iptables chains with it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from localcluster import config, network, pause, processes
from localcluster.errors import LocalClusterError
from localcluster.network import NodeNetwork

NODE_NAME = "localcluster"
KUBELET_PORT = 10250  # inside the node's netns: no other cluster shares it
CGROUP_FS = Path("/sys/fs/cgroup")
CONTAINER_LOG_LINKS = Path("/var/log/containers")
#: the one path kubelet hard-codes outside its root dir (the device plugins' registration socket).
DEVICE_PLUGINS = Path("/var/lib/kubelet/device-plugins")
K8S_NAMESPACE = "k8s.io"


@dataclass
class NodeBinaries:
    kubelet: Path
    kube_proxy: Path


def cgroup_hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy (v1 controllers, name=systemd, the unified v2 one)."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] in ("cgroup", "cgroup2"):
            found.append(Path(parts[1]))
    return found


def mounts_under(folder: Path) -> list[str]:
    """Mount points at or below ``folder``, deepest first."""
    prefix = str(folder.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(set(points), key=lambda p: (-p.count("/"), p))


@dataclass
class Node:
    workdir: Path
    cluster_id: str
    net: NodeNetwork
    binaries: NodeBinaries
    api_url: str  # the apiserver as the node reaches it (host end of the veth)
    token: str
    ca_cert: Path
    managed: list[processes.Managed] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.workdir / "node"

    @property
    def socket(self) -> Path:  # containerd_config puts it there
        return socket_dir(self.root / "containerd") / "containerd.sock"

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd" / "root"

    @property
    def cgroup_root(self) -> str:
        return f"/localcluster-{self.cluster_id}"

    # -- start ---------------------------------------------------------------------------------

    def start(self, images: list[Path], timeout: float = 90.0) -> None:
        logs = self.workdir / "logs"
        self.root.mkdir(parents=True, exist_ok=True)
        self._make_cgroups()
        kubeconfig = self._write_kubeconfig()
        # containerd starts from a copy (hard links) of a cached root that holds the images
        # already imported and unpacked: importing the project's image takes a minute, a copy
        # of its root about a second.
        seed_root(ensure_template([pause.ensure_pause_archive(), *images]), self.containerd_root)
        self._start("containerd", ["containerd", "--config", str(self._containerd_config())], logs)
        deadline = time.monotonic() + timeout
        while not self._ctr_ok():
            self._check(deadline, "containerd's socket")
            time.sleep(0.1)
        self._start("kubelet", self._kubelet_argv(kubeconfig), logs)
        self._start("kube-proxy", self._kube_proxy_argv(kubeconfig), logs)

    def _start(self, name: str, argv: list[str], logs: Path) -> None:
        self.managed.append(
            processes.spawn(
                name, [*self.net.nsenter(), *argv], logs / f"{name}.log", self.cluster_id
            )
        )

    def _check(self, deadline: float, what: str) -> None:
        self.check_alive()
        if time.monotonic() > deadline:
            raise LocalClusterError(f"timed out waiting for {what}; logs in {self.workdir}/logs")

    def check_alive(self) -> None:
        for managed in self.managed:
            if not managed.alive():
                raise LocalClusterError(
                    f"{managed.name} exited with {managed.process.returncode}; "
                    f"log {managed.log_path}:\n{managed.log_tail()}"
                )

    def ctr(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "--address", str(self.socket), "-n", K8S_NAMESPACE, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _ctr_ok(self) -> bool:
        return self.socket.exists() and self.ctr("version", timeout=10).returncode == 0

    def import_image(self, archive: Path) -> None:
        """Import an image archive (docker-archive or OCI) into the node's containerd, where
        the kubelet finds it: Pods with ``imagePullPolicy: IfNotPresent``/``Never`` run it."""
        if not archive.is_file():
            raise LocalClusterError(f"image archive {archive} not found")
        # unpacked at once for the CRI's snapshotter, so the first Pod does not pay for it.
        done = self.ctr("images", "import", "--snapshotter", "overlayfs", str(archive))
        if done.returncode != 0:
            raise LocalClusterError(f"ctr images import {archive} failed: {done.stderr.strip()}")

    def images(self) -> list[str]:
        done = self.ctr("images", "list", "-q")
        return [line for line in done.stdout.splitlines() if line]

    # -- configuration -------------------------------------------------------------------------

    def _make_cgroups(self) -> None:
        for hierarchy in cgroup_hierarchies():
            folder = hierarchy / self.cgroup_root.lstrip("/")
            folder.mkdir(exist_ok=True)
            # a new cpuset is empty (no task may join it) until it has cpus and mems.
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if (folder / knob).exists() and not (folder / knob).read_text().strip():
                    (folder / knob).write_text((hierarchy / knob).read_text())

    def _write_kubeconfig(self) -> Path:
        import base64

        ca = base64.b64encode(self.ca_cert.read_bytes()).decode()
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": self.api_url, "certificate-authority-data": ca},
                }
            ],
            "users": [{"name": "node", "user": {"token": self.token}}],
            "contexts": [{"name": "node", "context": {"cluster": "local", "user": "node"}}],
            "current-context": "node",
        }
        path = self.root / "kubeconfig"
        path.write_text(json.dumps(document, indent=2))
        path.chmod(0o600)
        return path

    def _containerd_config(self) -> Path:
        cni = self.root / "cni"
        (cni / "net.d").mkdir(parents=True, exist_ok=True)
        conflist = {
            "cniVersion": "1.0.0",
            "name": "localcluster",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.net.bridge,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.net.pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(cni / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (cni / "net.d" / "10-localcluster.conflist").write_text(json.dumps(conflist, indent=2))
        path = self.root / "containerd.toml"
        socket_dir(self.root / "containerd").mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(containerd_config(self.root / "containerd", cni / "net.d"))
        return path

    def _kubelet_argv(self, kubeconfig: Path) -> list[str]:
        kubelet = self.root / "kubelet"
        (kubelet / "pod-logs").mkdir(parents=True, exist_ok=True)
        settings = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.cgroup_root,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "failSwapOn": False,
            "address": self.net.node_ip,
            "port": KUBELET_PORT,
            "readOnlyPort": 0,
            "healthzPort": 0,
            # `kubectl logs`/`exec` without kubelet client certificates.
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "podLogsDir": str(kubelet / "pod-logs"),
            "volumePluginDir": str(kubelet / "volume-plugins"),
            "resolvConf": "/etc/resolv.conf",
            # the imported images can never be pulled again: never collect them, and never
            # evict Pods because the shared machine's disk is fuller than a real node's.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "0%",
                "imagefs.available": "0%",
                "nodefs.inodesFree": "0%",
            },
            "serializeImagePulls": False,
            "nodeStatusUpdateFrequency": "4s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "0s",
            "staticPodPath": "",
            "shutdownGracePeriod": "0s",
            "containerLogMaxFiles": 2,
        }
        path = self.root / "kubelet.json"
        path.write_text(json.dumps(settings, indent=2))
        return [
            str(self.binaries.kubelet),
            f"--config={path}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={kubelet / 'root'}",
            f"--cert-dir={kubelet / 'pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={self.net.node_ip}",
            "--v=1",
        ]

    def _kube_proxy_argv(self, kubeconfig: Path) -> list[str]:
        settings = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "hostnameOverride": NODE_NAME,
            "bindAddress": self.net.node_ip,
            "clusterCIDR": self.net.pod_cidr,
            # zero: leave the host-wide conntrack table alone (it is not per namespace).
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"minSyncPeriod": "0s", "syncPeriod": "30s"},
        }
        path = self.root / "kube-proxy.json"
        path.write_text(json.dumps(settings, indent=2))
        return [str(self.binaries.kube_proxy), f"--config={path}", "--v=1"]

    # -- stop ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop kubelet first (it would restart what we kill), then every container, then
        containerd, then clean what they leave on the host. Idempotent."""
        for managed in [m for m in self.managed if m.name == "kubelet"]:
            managed.stop(timeout=3.0)
        self.kill_containers()
        for managed in reversed(self.managed):
            managed.stop(timeout=3.0)
        self.managed.clear()
        processes.sweep(self.cluster_id)  # containerd-shim processes carry the marker
        cleanup_host(self.workdir, self.cluster_id, self.net)

    def kill_containers(self) -> None:
        kill_cgroup(self.cgroup_root)


def socket_dir(c: Path) -> Path:
    """Where the sockets of the containerd whose folder is ``c`` live (a path only: the folder is
    made where the configuration that names it is written).

    A unix socket's path may be at most ~104 bytes: under a long HOME (say
    /home/ci-runner/.cache/...) ``c/containerd.sock.ttrpc`` is longer and containerd exits. So
    the sockets live in a short folder named after ``c``.
    """
    base = Path("/run/pgshift") if os.geteuid() == 0 else Path(tempfile.gettempdir()) / "pgshift"
    return base / hashlib.sha256(str(c).encode()).hexdigest()[:16]


def containerd_config(c: Path, cni_conf_dir: Path) -> str:
    """containerd's configuration with everything (root, state, runc state) in ``c``, and its
    sockets in `socket_dir(c)`."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    sockets = socket_dir(c)
    return f"""version = 2
root = "{c}/root"
state = "{c}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{sockets}/containerd.sock"
[ttrpc]
  address = "{sockets}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{c}/opt"
[{cri}]
  sandbox_image = "{pause.PAUSE_IMAGE}"
  # without it every sandbox fails here: runc cannot raise oom_score_adj (no CAP_SYS_RESOURCE).
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{c}/runc"
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_conf_dir}"
"""


def _template_key(archives: list[Path]) -> str:
    version = subprocess.run(["containerd", "--version"], capture_output=True, text=True).stdout
    digest = hashlib.sha256(version.encode())
    for archive in archives:
        st = archive.stat()
        digest.update(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def ensure_template(archives: list[Path]) -> Path:
    """A containerd root with these image archives imported and unpacked, cached by their
    identity (path, size, mtime) and containerd's version; made by a throwaway containerd."""
    for archive in archives:
        if not archive.is_file():
            raise LocalClusterError(f"image archive {archive} not found")
    folder = config.cache_root() / "node-images"
    folder.mkdir(parents=True, exist_ok=True)
    key = _template_key(archives)
    done = folder / key / "root"
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.is_dir():
            os.utime(done.parent)  # in use: see the clean-up below
            return done
        work = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=folder))
        c = work / "containerd"
        (work / "cni").mkdir(parents=True)
        socket_dir(c).mkdir(parents=True, exist_ok=True, mode=0o700)
        (work / "containerd.toml").write_text(containerd_config(c, work / "cni"))
        log = (work / "containerd.log").open("ab")
        daemon = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "--", "containerd", "--config",
             str(work / "containerd.toml")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            ctr = ["ctr", "--address", str(socket_dir(c) / "containerd.sock"), "-n", K8S_NAMESPACE]
            deadline = time.monotonic() + 30
            while subprocess.run([*ctr, "version"], capture_output=True).returncode != 0:
                if daemon.poll() is not None or time.monotonic() > deadline:
                    raise LocalClusterError(f"containerd for the image cache failed: {work}")
                time.sleep(0.1)
            for archive in archives:
                imported = subprocess.run(
                    [*ctr, "images", "import", "--snapshotter", "overlayfs", str(archive)],
                    capture_output=True, text=True,
                )  # fmt: skip
                if imported.returncode != 0:
                    raise LocalClusterError(
                        f"ctr images import {archive} failed: {imported.stderr.strip()}"
                    )
        finally:
            processes.kill_group(daemon.pid, 10.0)
            daemon.wait(timeout=10)
            log.close()
            shutil.rmtree(socket_dir(c), ignore_errors=True)
        for point in mounts_under(work):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        (folder / key).mkdir(exist_ok=True)
        (c / "root").rename(done)
        shutil.rmtree(work, ignore_errors=True)
        # older image sets only cost disk, but a running cluster may still use one as its
        # layers: remove those unused for a day.
        for old in folder.iterdir():
            stale = time.time() - old.stat().st_mtime > 86400
            if old.is_dir() and old.name != key and stale and "-" not in old.name:
                shutil.rmtree(old, ignore_errors=True)
        return done


SNAPSHOTS = Path("io.containerd.snapshotter.v1.overlayfs") / "snapshots"


def seed_root(template: Path, root: Path) -> None:
    """A cluster's containerd root from the cached one: unpacked layers (overlay lower dirs,
    never written to) are symlinks to the cache, blobs hard links, and the bolt databases,
    which containerd writes, real copies."""
    root.mkdir(parents=True, exist_ok=True)
    for folder, dirs, files in os.walk(template):
        here = Path(folder)
        relative = here.relative_to(template)
        if relative == SNAPSHOTS:
            for name in dirs:  # never walked: the cache's own folders serve as lower dirs
                (root / relative / name).symlink_to(here / name)
            dirs.clear()
        for name in dirs:
            (root / relative / name).mkdir(exist_ok=True)
            shutil.copystat(here / name, root / relative / name)
        for name in files:
            if name.endswith(".db"):
                shutil.copy2(here / name, root / relative / name)
            else:
                os.link(here / name, root / relative / name, follow_symlinks=False)


def _cgroup_pids(folder: Path) -> set[int]:
    pids: set[int] = set()
    if not folder.is_dir():
        return pids
    for procs in folder.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(line) for line in procs.read_text().split())
    return pids


def kill_cgroup(cgroup_root: str, timeout: float = 10.0) -> None:
    """SIGKILL every process in the cgroup root (the Pods' containers), until none is left."""
    hierarchies = cgroup_hierarchies()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = set().union(*(_cgroup_pids(h / cgroup_root.lstrip("/")) for h in hierarchies))
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def remove_cgroups(cgroup_root: str) -> list[str]:
    """rmdir the cgroup root's folders bottom-up in every hierarchy; return what stays."""
    left = []
    for hierarchy in cgroup_hierarchies():
        top = hierarchy / cgroup_root.lstrip("/")
        if not top.is_dir():
            continue
        folders = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for folder in [*folders, top]:
            with contextlib.suppress(OSError):
                folder.rmdir()
        if top.exists():
            left.append(str(top))
    return left


def cleanup_host(workdir: Path, cluster_id: str, net: NodeNetwork) -> None:
    """Remove what the node leaves outside its folder, and every mount inside it."""
    cgroup_root = f"/localcluster-{cluster_id}"
    kill_cgroup(cgroup_root)
    for point in mounts_under(workdir):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    for _ in range(20):
        if not remove_cgroups(cgroup_root):
            break
        time.sleep(0.1)
    if CONTAINER_LOG_LINKS.is_dir():
        logs = str(workdir.resolve())
        for link in CONTAINER_LOG_LINKS.iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and os.readlink(link).startswith(logs):
                    link.unlink()
    if not _kubelets_running():
        with contextlib.suppress(OSError):
            (DEVICE_PLUGINS / "kubelet.sock").unlink(missing_ok=True)
            DEVICE_PLUGINS.rmdir()
            DEVICE_PLUGINS.parent.rmdir()
    shutil.rmtree(socket_dir(workdir / "node" / "containerd"), ignore_errors=True)
    network.remove(net)


def _kubelets_running() -> bool:
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "kubelet":
                return True
    return False


def leftovers(workdir: Path, cluster_id: str, net: NodeNetwork) -> list[str]:
    """What of a node is still on the host (empty after ``stop``)."""
    found = network.leftovers(net)
    found += [f"mount {p}" for p in mounts_under(workdir)]
    for hierarchy in cgroup_hierarchies():
        top = hierarchy / f"localcluster-{cluster_id}"
        if top.exists():
            found.append(f"cgroup {top}")
    if CONTAINER_LOG_LINKS.is_dir():
        logs = str(workdir.resolve())
        found += [
            f"log link {link}"
            for link in CONTAINER_LOG_LINKS.iterdir()
            if link.is_symlink() and os.readlink(link).startswith(logs)
        ]
    return found
