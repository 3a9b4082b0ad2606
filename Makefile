# The two commands a new user needs: `make run` and `make test`. Everything else is a helper.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
export DP_HOME ?= $(CURDIR)/.dp_home
export DAGSTER_HOME ?= $(DP_HOME)/dagster

.PHONY: run test test-serial test-faults test-client install lock bench docs lint

# Every dependency comes from requirements.lock, each file checked against its hash: a package
# changed on the index, or one the lock does not name, stops the install.
# Bytecode is compiled at install (pip's default, not uv's): a Python process started with
# PYTHONDONTWRITEBYTECODE set (this machine and CI set it) otherwise compiles every module it
# imports from source, every time: `import dagster` took 1.4 s instead of 0.5 s, and every
# webserver, daemon, run worker and test subprocess paid it. The platform's own packages too; a
# source edited later is compiled again in memory (its .pyc no longer matches), never run stale.
UV_VERSION = 0.13.9
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install -q --python $(PY) --compile-bytecode --require-hashes -r requirements.lock
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	$(PY) -m compileall -q -j 0 $(wildcard dp_*/) bench > /dev/null
	touch $@

# The designer's client (docs/designer.md): npm ci from the committed lockfile, then a Vite build
# into designer/dist, which `dp designer` serves (nothing from a CDN at run time).
DESIGNER_SOURCES = $(wildcard designer/src/*.ts designer/src/*.tsx designer/src/*.css designer/src/components/*.tsx) \
	designer/index.html designer/vite.config.ts designer/tsconfig.json
designer/node_modules/.package-lock.json: designer/package-lock.json
	cd designer && npm ci --no-audit --no-fund && touch node_modules/.package-lock.json
designer/dist/index.html: designer/node_modules/.package-lock.json $(DESIGNER_SOURCES)
	cd designer && npm run build

install: $(VENV)/.installed designer/dist/index.html

# The flow designer (`dp designer`, docs/designer.md) runs beside Dagster's UI on its own port,
# and `dp dispatch` (docs/events.md) starts event-triggered runs as events arrive; both stop with
# it (Ctrl-C and SIGTERM reach them all; the trap covers dagster dev exiting alone).
DESIGNER_PORT ?= 3001
run: install
	$(PY) -m dp_assets.cli init-home
	$(PY) -m dp_assets.cli designer --port $(DESIGNER_PORT) & designer=$$!; \
	$(PY) -m dp_assets.cli dispatch \
		--dagster-url "$${DP_DAGSTER_GRAPHQL_URL:-http://127.0.0.1:$${DAGSTER_CLI_DEV_PORT:-3000}/graphql}" & \
	dispatcher=$$!; \
	trap 'kill $$designer $$dispatcher 2>/dev/null' EXIT INT TERM; \
	$(VENV)/bin/dagster dev -w workspace.yaml

# The whole suite, the live-stack fault tests (F2, F4-F7, F10: about 5 minutes, on private
# PostgreSQL and Redis servers) included, as two pytest sessions side by side: the live stacks
# (tests/deploy, the docs' command blocks and the bench smoke: Celery stacks, private servers,
# `make run` and `dp` commands as a user runs them, mostly waiting on their processes; their
# output is printed when they finish) and everything else at a lower CPU
# priority (nice), so that it never starves a stack. The CPU-hungry bench smoke runs last
# (tests/conftest.py), when the other session has finished. They share no Redis database, PostgreSQL
# database or folder. Each session is spread over pytest-xdist workers (LIVE_WORKERS, TEST_WORKERS;
# 0 runs a session in one process), a whole module (or the modules sharing one platform or
# webserver) at a time, those that start Dagster first (tests/support/xdist_groups.py): most of
# the suite's time is waiting on the processes it started. `make test-serial` runs one session;
# `make test-faults` the fault tests.
# Each session reports its 25 slowest tests and its wall time (where the suite's time goes).
# The live stacks also take three modules that mostly wait on processes of their own (backfills
# on a `dagster dev`, a live `dagster-daemon`, an unreachable run storage's timeouts): without
# them the other session was the longer (1,513 s against 1,073 s in the clean-clone CI of
# 2026-12-07, which ran past 25 minutes). A module whose folder has a conftest.py but no
# __init__.py cannot join: tests/deploy imports its own conftest by that name.
LIVE_TESTS = tests/bench tests/deploy tests/docs tests/partitions/test_backfills.py tests/checks/test_automation_freshness_pools.py tests/cli/test_instance_access.py
TEST_REPORT = --durations=25 --durations-min=5
LIVE_WORKERS ?= 2
TEST_WORKERS ?= 2
test: install lint test-client
	@start=$$(date +%s); \
	{ $(PY) -m pytest -n $(LIVE_WORKERS) --dist loadscope -p no:cacheprovider --basetemp=/tmp/dp-tests-live \
	    $(TEST_REPORT) $(LIVE_TESTS) $(PYTEST_ARGS); \
	  code=$$?; echo "live stacks: $$(( $$(date +%s) - start )) s"; exit $$code; } > .test-live.log 2>&1 & live=$$!; \
	nice -n 5 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --basetemp=/tmp/dp-tests-rest $(TEST_REPORT) $(addprefix --ignore=,$(LIVE_TESTS)) $(PYTEST_ARGS); \
	rest=$$?; echo "everything else: $$(( $$(date +%s) - start )) s"; wait $$live; live_rc=$$?; \
	echo "===== live stacks: $(LIVE_TESTS) ====="; cat .test-live.log; \
	echo "make test: everything else exited $$rest, the live stacks $$live_rc"; \
	case "$$rest $$live_rc" in "0 0"|"0 5"|"5 0") ;; *) exit 1;; esac  # 5: -k selected none there

# The linters, with their settings in pyproject.toml: ruff, mypy on the product packages, and the
# package layers (import-linter). `make test` runs them first, so CI does.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The designer's client state and spec<->canvas mapping (Vitest).
test-client: install
	cd designer && npm test

test-serial: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-faults: install
	$(PY) -m pytest -p no:randomly tests/deploy/test_deploy_faults.py $(PYTEST_ARGS)

# After a change to pyproject.toml: pin every package with its hashes. requirements.lock is the
# development environment (make install, CI); requirements-runtime.lock is what the image
# installs (Dockerfile): the same versions, without the dev extra (pytest, playwright, duckdb...).
# Versions already in a lock are kept (uv prefers them); `make lock UPGRADE=--upgrade` moves all.
lock:
	$(VENV)/bin/uv pip compile -q pyproject.toml --python $(PY) --extra dev --generate-hashes $(UPGRADE) \
		-o requirements.lock
	$(VENV)/bin/uv pip compile -q pyproject.toml --python $(PY) --generate-hashes -c requirements.lock \
		-o requirements-runtime.lock

bench: install
	$(PY) -m bench $(BENCH_ARGS)

docs: install
	$(PY) -m dp_assets.cli docs
