"""localcluster.image's pure parts: which Debian mirror the base comes from, and its cache key."""

from __future__ import annotations

from pathlib import Path

from localcluster import image

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""


def test_the_mirror_is_read_from_deb822_sources() -> None:
    sources = {"/etc/apt/sources.list.d/debian.sources": DEB822}
    assert image.debian_mirror(sources) == "http://deb.debian.org/debian"


def test_the_mirror_is_read_from_one_line_lists_and_security_is_skipped() -> None:
    text = (
        "# deb http://old.example/debian bookworm main\n"
        "deb http://security.debian.org/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main\n"
    )
    assert image.debian_mirror({"/etc/apt/sources.list": text}) == "http://mirror.example/debian"


def test_no_mirror_for_the_suite_is_none() -> None:
    other = "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"
    assert image.debian_mirror({"/etc/apt/sources.list.d/google.list": other}) is None


def test_the_base_key_changes_with_each_debootstrap_input() -> None:
    key = image.base_key("http://deb.debian.org/debian", "amd64")
    assert key == image.base_key("http://deb.debian.org/debian", "amd64")
    assert key != image.base_key("http://mirror.example/debian", "amd64")
    assert key != image.base_key("http://deb.debian.org/debian", "arm64")
    assert image.base_reference(key).startswith("localhost/python:3.11-slim-bookworm-")


def test_the_private_storage_has_overlay_runc_and_the_ulimits_fix(tmp_path: Path) -> None:
    env = image.engine_env(tmp_path)
    storage = Path(env["CONTAINERS_STORAGE_CONF"]).read_text()
    assert 'driver = "overlay"' in storage and str(tmp_path / "storage") in storage
    conf = Path(env["CONTAINERS_CONF"]).read_text()
    assert '"nofile=1024:4096", "nproc=4096:4096"' in conf and 'runtime = "runc"' in conf
    assert env["BUILDAH_ISOLATION"] == "chroot"


def _project(root: Path) -> Path:
    (root / "operator/pgshift").mkdir(parents=True)
    (root / "operator/pgshift/cli.py").write_text("print('v1')\n")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (root / "README.md").write_text("readme\n")
    (root / "Dockerfile").write_text("FROM x\n")
    (root / "notes.txt").write_text("not in the context\n")
    (root / ".dockerignore").write_text("*\n!pyproject.toml\n!README*.md\n!operator/pgshift/\n")
    return root


def test_the_context_is_what_dockerignore_lets_back_in(tmp_path: Path) -> None:
    root = _project(tmp_path)
    files = image.context_files(root)
    assert files is not None
    assert [f.relative_to(root).as_posix() for f in files] == [
        "README.md",
        "operator/pgshift/cli.py",
        "pyproject.toml",
    ]
    # a .dockerignore that does not exclude everything first cannot bound the context
    (root / ".dockerignore").write_text("**/__pycache__\n")
    assert image.context_files(root) is None
    assert image.build_fingerprint(root, {}) is None


def test_the_fingerprint_changes_with_every_input_of_the_build(tmp_path: Path) -> None:
    root = _project(tmp_path)
    args = {"BASE_IMAGE": "localhost/base:a", "PG_CLIENT": "pypi"}
    first = image.build_fingerprint(root, args)
    assert first == image.build_fingerprint(root, dict(args))
    (root / "notes.txt").write_text("outside the context: no rebuild\n")
    assert image.build_fingerprint(root, args) == first
    changes = [
        lambda: (root / "operator/pgshift/cli.py").write_text("print('v2')\n"),
        lambda: (root / "operator/pgshift/new.py").write_text(""),
        lambda: (root / "operator/pgshift/new.py").chmod(0o755),
        lambda: (root / "Dockerfile").write_text("FROM y\n"),
        lambda: (root / ".dockerignore").write_text("*\n!pyproject.toml\n!operator/pgshift/\n"),
    ]
    seen = {first}
    for change in changes:
        change()
        now = image.build_fingerprint(root, args)
        assert now not in seen
        seen.add(now)
    assert image.build_fingerprint(root, {**args, "BASE_IMAGE": "localhost/base:b"}) not in seen


def test_the_real_context_is_bounded() -> None:
    files = image.context_files(image.ROOT)
    assert files is not None
    names = {f.relative_to(image.ROOT).as_posix() for f in files}
    assert "pyproject.toml" in names and "operator/pgshift/cli.py" in names
    assert not any(n.startswith(("tests/", ".venv/", "localcluster/")) for n in names)
