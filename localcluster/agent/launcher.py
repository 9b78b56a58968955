"""Start one container: build its root in a private mount namespace, then exec its command.

The agent runs this file as ``unshare --mount --uts --propagation private -- python -I -S
launcher.py <spec.json>``; it is standalone (standard library only) because it runs before any
import path is set up. Steps, all inside the new mount namespace so nothing reaches the host:

1. a tmpfs becomes the new root; every top-level entry of the host's ``/`` is bind-mounted into
   it (the "image" is the host), ``/dev`` gets a minimal set of devices;
2. the image folder, if the image is in the image-roots map, is laid over ``/`` entry by entry;
3. each volume is bind-mounted at its mountPath. A mountPath that does not exist on the host is
   created without touching the host: its parent is "shadowed" (a tmpfs holding bind mounts of
   the parent's entries) and the folder is made in that tmpfs;
4. folders a non-root user must cross to reach the interpreter (``/root`` under pyenv) are
   shadowed with mode 0755, in this namespace only;
5. with readOnlyRootFilesystem every mount but the volumes, /dev and /proc is made read-only;
6. chroot, chdir to workingDir, drop to runAsUser/runAsGroup, exec the command.

A failure before exec writes ``{"reason", "message"}`` to the result file and exits 128, which
the agent reports as the container's termination, like a kubelet reports StartError.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import stat
import sys
from typing import Any

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]


class StartError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    result = _libc.mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def bind(source: str, target: str, *, read_only: bool = False) -> None:
    mount(source, target, None, MS_BIND | MS_REC, None)
    if read_only:
        mount("none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)


def placeholder(host_path: str, target: str) -> None:
    """Make ``target`` look like ``host_path`` (a symlink copied, a folder, or a file to bind)."""
    if os.path.islink(host_path):
        os.symlink(os.readlink(host_path), target)
        return
    if os.path.isdir(host_path):
        os.mkdir(target)
    else:
        open(target, "a").close()
    bind(host_path, target)


class Root:
    """The container's root folder and the bookkeeping of what in it may be written."""

    def __init__(self, path: str) -> None:
        self.path = path.rstrip("/")
        self.writable: set[str] = {"/"}  # container folders backed by our own tmpfs
        self.volumes: list[str] = []  # container paths of volume mounts

    def host(self, inside: str) -> str:
        return self.path + inside if inside != "/" else self.path

    def in_volume(self, inside: str) -> bool:
        return any(inside == v or inside.startswith(v.rstrip("/") + "/") for v in self.volumes)

    def build(self) -> None:
        mount("tmpfs", self.path, "tmpfs", 0, "mode=0755")
        for name in sorted(os.listdir("/")):
            if name in ("proc", "dev", "sys"):
                continue
            placeholder(f"/{name}", f"{self.path}/{name}")
        for name in ("proc", "sys"):
            os.mkdir(f"{self.path}/{name}")
            bind(f"/{name}", f"{self.path}/{name}")
        self._devices()

    def _devices(self) -> None:
        dev = f"{self.path}/dev"
        os.mkdir(dev)
        mount("tmpfs", dev, "tmpfs", 0, "mode=0755")
        for name in ("null", "zero", "full", "random", "urandom", "tty"):
            if os.path.exists(f"/dev/{name}"):
                placeholder(f"/dev/{name}", f"{dev}/{name}")
        os.mkdir(f"{dev}/pts")
        bind("/dev/pts", f"{dev}/pts")
        os.mkdir(f"{dev}/shm")
        mount("tmpfs", f"{dev}/shm", "tmpfs", 0, "mode=1777")
        for name, to in (
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
        ):
            os.symlink(to, f"{dev}/{name}")
        self.writable.add("/dev")

    def shadow(self, inside: str, *, mode: int | None = None) -> None:
        """Replace a host-backed folder by a tmpfs that holds bind mounts of its entries."""
        original = os.stat(inside)
        bits = stat.S_IMODE(original.st_mode) if mode is None else mode
        target = self.host(inside)
        entries = sorted(os.listdir(inside))
        mount("tmpfs", target, "tmpfs", 0, f"mode={bits:o}")
        os.chown(target, original.st_uid, original.st_gid)
        for name in entries:
            placeholder(f"{inside.rstrip('/')}/{name}", f"{target}/{name}")
        self.writable.add(inside)

    def ensure(self, inside: str, *, directory: bool) -> None:
        """Create ``inside`` in the container's root without ever writing to the host."""
        parts = [p for p in inside.split("/") if p]
        current = "/"
        for index, part in enumerate(parts):
            child = f"{current.rstrip('/')}/{part}"
            last = index == len(parts) - 1
            if not os.path.lexists(self.host(child)):
                if current not in self.writable and not self.in_volume(current):
                    self.shadow(current)
                if last and not directory:
                    open(self.host(child), "a").close()
                else:
                    os.mkdir(self.host(child), 0o755)
                    self.writable.add(child)
            current = child

    def lay_image(self, image_root: str) -> None:
        """The image's files appear at ``/<entry>``, over the host's entry of the same name."""
        for name in sorted(os.listdir(image_root)):
            source = f"{image_root}/{name}"
            target = f"{self.path}/{name}"
            if os.path.islink(target) or (os.path.exists(target) and not os.path.isdir(target)):
                os.unlink(target)
            if not os.path.lexists(target):
                if os.path.isdir(source):
                    os.mkdir(target)
                else:
                    open(target, "a").close()
            bind(source, target)

    def open_path(self, inside: str) -> None:
        """Let any user cross every folder on the way to ``inside`` (pyenv lives in /root)."""
        current = "/"
        for part in [p for p in inside.split("/") if p]:
            current = f"{current.rstrip('/')}/{part}"
            if not os.path.isdir(current):
                return
            mode = stat.S_IMODE(os.stat(current).st_mode)
            if mode & 0o001 == 0 and current not in self.writable and not self.in_volume(current):
                self.shadow(current, mode=mode | 0o755)

    def make_read_only(self) -> None:
        """Every mount of the root but volumes, /dev and /proc becomes read-only."""
        keep = ("/proc", "/dev", *self.volumes)
        with open("/proc/self/mountinfo") as info:
            points = [line.split()[4] for line in info]
        for point in points:
            if point != self.path and not point.startswith(self.path + "/"):
                continue
            inside = point[len(self.path) :] or "/"
            if any(inside == k or inside.startswith(k.rstrip("/") + "/") for k in keep):
                continue
            mount("none", point, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)


def resolve_command(argv: list[str], env: dict[str, str]) -> str:
    if not argv:
        raise StartError("StartError", "no command specified: the image entry point is not used")
    name = argv[0]
    if "/" in name:
        if os.path.isfile(name) and os.access(name, os.X_OK):
            return name
        raise StartError("StartError", f'exec: "{name}": stat {name}: no such file or directory')
    found = shutil.which(name, path=env.get("PATH", ""))
    if found is None:
        raise StartError("StartError", f'exec: "{name}": executable file not found in $PATH')
    return found


def launch(spec: dict[str, Any]) -> None:
    root = Root(spec["root"])
    root.build()
    if spec.get("imageRoot"):
        root.lay_image(spec["imageRoot"])
    for item in sorted(spec["mounts"], key=lambda m: m["target"].count("/")):
        root.ensure(item["target"], directory=item["directory"])
        bind(item["source"], root.host(item["target"]), read_only=item["readOnly"])
        root.volumes.append(item["target"])
    if spec["uid"] != 0:
        for path in spec.get("traverse", []):
            root.open_path(path)
    working_dir = spec.get("workingDir") or "/"
    root.ensure(working_dir, directory=True)
    if spec.get("readOnlyRoot"):
        root.make_read_only()
    if spec.get("hostname"):
        socket.sethostname(spec["hostname"])  # a private UTS namespace: `hostname` is the Pod
    os.chroot(root.path)
    os.chdir(working_dir)
    os.setgroups(spec["groups"])
    os.setgid(spec["gid"])
    os.setuid(spec["uid"])
    # Changing credentials clears the parent-death signal: set it again, now, so the process
    # dies with the agent instead of outliving a crashed test session.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    env = spec["env"]
    argv = spec["argv"]
    path = resolve_command(argv, env)
    os.execve(path, argv, env)


def main() -> None:
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    # Opened before chroot: the result file is outside the container's root.
    result = os.open(spec["resultFile"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        launch(spec)
    except StartError as error:
        reason, message = error.reason, error.message
    except OSError as error:
        reason, message = "RunContainerError", f"container setup failed: {error}"
    except Exception as error:  # the reason must reach the Pod's status, whatever it is
        reason, message = "RunContainerError", f"container setup failed: {error!r}"
    os.write(result, json.dumps({"reason": reason, "message": message}).encode())
    os._exit(128)


if __name__ == "__main__":
    main()
