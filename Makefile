# The two commands a new user needs: `make run` and `make test`. Everything else is a helper.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
export DP_HOME ?= $(CURDIR)/.dp_home
export DAGSTER_HOME ?= $(DP_HOME)/dagster

.PHONY: run test test-faults install lock bench docs

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --python $(PY) -r requirements.lock
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) -m dp_assets.cli init-home
	$(VENV)/bin/dagster dev -w workspace.yaml

# The whole suite, the live-stack fault tests (F2, F4-F7, F10: about 5 minutes, on private
# PostgreSQL and Redis servers) included. `make test-faults` runs only those.
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-faults: install
	$(PY) -m pytest -p no:randomly tests/deploy/test_deploy_faults.py $(PYTEST_ARGS)

lock:
	$(VENV)/bin/uv pip compile -q pyproject.toml --extra dev -o requirements.lock

bench: install
	$(PY) -m bench $(BENCH_ARGS)

docs: install
	$(PY) -m dp_assets.cli docs
