# syntax=docker/dockerfile:1
#
# pgshift: one image for the operator (`pgshift operator`, the default command) and for the
# Jobs it creates (their pod specs name `pgshift <verb>` explicitly).
#
#   docker build -t ghcr.io/pgshift/pgshift:0.1.0 .
#
# Stage 1 builds the pgshift wheel and the wheels of its dependencies; stage 2 installs them
# into a slim Python with the PostgreSQL client from the PGDG repository, and nothing else:
# no compiler, no `build`, no source tree.
#
# pg_dump must be at least as new as the server it dumps: PG_MAJOR=18 dumps PostgreSQL 9.2
# through 18 (pg_dump's own floor is 9.2). Raise PG_MAJOR with each PostgreSQL major release.

ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src

# Only what the wheel is built from (see .dockerignore): the project metadata and the package.
COPY pyproject.toml README*.md ./
COPY operator/pgshift ./operator/pgshift

# The same build CI proves in tests/unit/test_dockerfile.py: `pip wheel` of this folder.
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip wheel --wheel-dir /wheels /wheels/pgshift-*.whl

# ---------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS final

ARG PG_MAJOR=18
ARG UID=65532

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp

# PostgreSQL client (pg_dump, pg_restore, psql) from PGDG: Debian's postgresql-common ships the
# repository key and the script that adds the repository, so nothing is fetched with curl.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates postgresql-common; \
    /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y; \
    apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}"; \
    rm -rf /var/lib/apt/lists/*; \
    ln -s "/usr/lib/postgresql/${PG_MAJOR}/bin/pg_dump" /usr/local/bin/pg_dump; \
    ln -s "/usr/lib/postgresql/${PG_MAJOR}/bin/pg_restore" /usr/local/bin/pg_restore; \
    ln -s "/usr/lib/postgresql/${PG_MAJOR}/bin/psql" /usr/local/bin/psql; \
    pg_dump --version

# Install from the wheels only: no index, no compiler, no sdist builds in this stage.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels pgshift \
 && pgshift --help >/dev/null \
 && kubectl-pgshift --help >/dev/null

# A fixed non-root uid (distroless' "nonroot"), numeric so runAsNonRoot can verify it.
RUN groupadd --gid "${UID}" pgshift \
 && useradd --uid "${UID}" --gid "${UID}" --no-create-home --home-dir /tmp --shell /usr/sbin/nologin pgshift
USER 65532:65532
WORKDIR /tmp

ENTRYPOINT ["pgshift"]
CMD ["operator"]
