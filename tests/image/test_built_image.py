"""The image `make image` built, run with buildah (chroot): what users deploy, without Kubernetes.

Its pg_dump (version, and a real dump of the tests' PostgreSQL), its entry points, its uid, its
filesystem (nothing of the build or of this machine left in it), the archive the node imports,
and that buildah's layer cache never hands back a stale layer for what the Dockerfile copies
from its build stage.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from localcluster import image
from tests.pgserver import PG_BIN, PgServer

pytestmark = pytest.mark.image


def in_image(built: image.BuiltImage, *argv: str, user: str | None = None) -> str:
    done = image.run_in_image(built.reference, argv, user=user)
    assert done.returncode == 0, f"{argv}: {done.stderr.strip()[-2000:]}"
    return done.stdout


def major(version_line: str) -> int:
    found = re.search(r"\(PostgreSQL\) (\d+)", version_line)
    assert found, version_line
    return int(found.group(1))


def test_pg_dump_is_at_least_as_new_as_the_tests_server(built_image: image.BuiltImage) -> None:
    server = subprocess.run(
        [str(PG_BIN / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    for tool in ("pg_dump", "pg_restore", "psql"):
        assert major(in_image(built_image, tool, "--version")) == 18
    assert major(in_image(built_image, "pg_dump", "--version")) >= major(server)


def test_pg_dump_dumps_the_real_server(
    built_image: image.BuiltImage, pg_server: PgServer, database_name: str
) -> None:
    # chroot isolation shares the host's network: the image's own pg_dump, over TCP.
    pg_server.psql("CREATE TABLE shipped (id int PRIMARY KEY, note text)", dbname=database_name)
    dump = in_image(built_image, "pg_dump", "--schema-only", pg_server.url(database_name))
    assert "CREATE TABLE public.shipped" in dump
    assert "-- Dumped by pg_dump version 18." in dump


def test_the_entry_points_run(built_image: image.BuiltImage) -> None:
    assert "operator" in in_image(built_image, "pgshift", "--help")
    assert "approve" in in_image(built_image, "kubectl-pgshift", "--help")
    assert in_image(built_image, "sh", "-c", "command -v pgshift").strip() == (
        "/opt/pgshift/bin/pgshift"
    )


def test_it_runs_as_65532_with_the_operator_as_its_command(
    built_image: image.BuiltImage,
) -> None:
    assert in_image(built_image, "id", "-u").strip() == "65532"
    assert in_image(built_image, "id", "-g").strip() == "65532"
    inspected = subprocess.run(
        ["buildah", "inspect", "--type", "image", built_image.reference],
        env=image.engine_env(image.cache_dir()),
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(inspected.stdout)["Docker"]["config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["pgshift"]
    assert config["Cmd"] == ["operator"]
    assert config["WorkingDir"] == "/tmp"
    assert "HOME=/tmp" in config["Env"]


def test_the_filesystem_holds_no_build_and_nothing_of_this_machine(
    built_image: image.BuiltImage,
) -> None:
    script = (
        "for p in /src /wheels /pgclient /tmp/requirements.txt /usr/bin/gcc /usr/bin/cc; do"
        " test -e $p && echo present: $p; done;"
        # the host's pip.conf was bind-mounted for RUN steps: at most an empty mount point stays
        " test -s /etc/pip.conf && echo present: /etc/pip.conf;"
        " ls /var/lib/apt/lists | grep -v -x -e lock -e partial -e auxfiles;"
        " test -w / && echo writable: /; true"
    )
    assert in_image(built_image, "sh", "-c", script).strip() == ""
    # the client is PostgreSQL's own build, with only its three tools and libpq
    assert in_image(built_image, "ls", "/opt/postgresql/bin").split() == [
        "pg_dump",
        "pg_restore",
        "psql",
    ]


def test_the_archive_holds_the_image_under_the_charts_name(
    built_image: image.BuiltImage,
) -> None:
    assert built_image.archive == image.archive_path()
    with tarfile.open(built_image.archive) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert [m["RepoTags"] for m in manifest] == [[built_image.reference]]
    assert manifest[0]["Config"].removesuffix(".json").removeprefix("sha256:") == (
        built_image.image_id
    )


def test_a_rebuild_with_nothing_changed_keeps_the_image_and_the_archive(
    built_image: image.BuiltImage,
) -> None:
    before = built_image.archive.stat().st_mtime_ns
    again = image.build(say=lambda _line: None)
    assert again == built_image
    assert again.archive.stat().st_mtime_ns == before


def _build_probe(context: Path, base: str, tag: str) -> str:
    env = image.engine_env(image.cache_dir())
    iid = context / "iid"
    subprocess.run(
        [
            "buildah",
            "bud",
            "--isolation",
            "chroot",
            "--layers",
            "--pull=never",
            "--iidfile",
            str(iid),
            "--build-arg",
            f"BASE_IMAGE={base}",
            "-t",
            tag,
            str(context),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    done = image.run_in_image(tag, ["cat", "/shipped"])
    subprocess.run(["buildah", "rmi", tag], env=env, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_copy_from_the_build_stage_is_never_a_stale_layer(
    built_image: image.BuiltImage, tmp_path: Path
) -> None:
    """The Dockerfile's pattern (COPY --from=build), cached with --layers: a change of what the
    build stage makes reaches the final stage (unlike RUN --mount=from, buildah#4522)."""
    base = image.local_base_reference()
    (tmp_path / "Dockerfile").write_text(
        "ARG BASE_IMAGE\n"
        "FROM ${BASE_IMAGE} AS build\nCOPY input /input\nRUN cp /input /made\n"
        "FROM ${BASE_IMAGE} AS final\nCOPY --from=build /made /shipped\n"
    )
    (tmp_path / "input").write_text("first\n")
    assert _build_probe(tmp_path, base, "localhost/pgshift-probe:1") == "first"
    (tmp_path / "input").write_text("second\n")
    assert _build_probe(tmp_path, base, "localhost/pgshift-probe:2") == "second"
