# The two commands: `make demo` and `make test` (see README.md).
#
# Installs are reproducible: uv installs exactly the versions pinned in the committed uv.lock
# (`uv sync --frozen`). uv is used from PATH when it is there, else bootstrapped once into
# .uv/ through pip (so it reaches the package index the same way pip does). After changing a
# dependency in pyproject.toml run `make lock` and commit uv.lock with it.
ifndef PYTHON
PYTHON := $(shell command -v python3.11 || command -v python3.12 || command -v python3)
endif
UV_VERSION ?= 0.13.9
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
DATA_DIR ?= data
# Where `make demo`/`make dev` serve the Daktela simulator (fixed, so data/crmsync.env stays valid).
SIMULATOR_PORT ?= 8765
# The CRM side of `make demo`: sql (the SQLite demo CRM), raynet or hubspot (their simulators).
CRM ?= sql
# The dev extra carries the test and lint tools; `make demo` needs the same environment.
UV_SYNC_FLAGS ?= --frozen --extra dev

# uv must never download an interpreter: the project runs on the machine's Python.
export UV_PYTHON_DOWNLOADS := never
# uv resolves against the package index pip is configured for (PIP_INDEX_URL or pip.conf's
# global.index-url), when there is one; otherwise PyPI, as recorded in uv.lock.
PIP_INDEX := $(or $(PIP_INDEX_URL),$(shell $(PYTHON) -m pip config get global.index-url 2>/dev/null))
ifneq ($(strip $(PIP_INDEX)),)
export UV_DEFAULT_INDEX ?= $(PIP_INDEX)
endif

UV ?= $(shell command -v uv 2>/dev/null)
ifeq ($(strip $(UV)),)
UV := .uv/bin/uv
endif

.PHONY: demo test dev lint typecheck defs-check lock lock-check install unit bench bench-dlt clean

.uv/bin/uv:
	$(PYTHON) -m pip install --quiet --target .uv 'uv==$(UV_VERSION)' \
		|| python3 -m pip install --quiet --target .uv 'uv==$(UV_VERSION)'

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync $(UV_SYNC_FLAGS)
	touch $(STAMP)

## make install: the locked environment in .venv (what every other target starts with).
install: $(STAMP)

## make lock: re-resolve uv.lock after a change to the dependencies in pyproject.toml.
lock: | $(UV)
	$(UV) lock

## make demo: simulator + demo CRM + one real Dagster run of every asset, then a summary.
demo: $(STAMP)
	$(BIN)/crmsync demo --data-dir $(DATA_DIR) --simulator-port $(SIMULATOR_PORT) --crm $(CRM)

## make test: lock check, linters, type check, definitions check and the whole test suite.
test: $(STAMP) lock-check lint typecheck defs-check
	$(BIN)/python -m pytest -q

lock-check: | $(UV)
	$(UV) lock --check

lint: $(STAMP)
	$(BIN)/ruff check crmsync_pipelines crmsync_tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy

# The code location must load, and every definition validate, without any secret set.
defs-check: $(STAMP)
	env -u DAKTELA_ACCESS_TOKEN -u DAKTELA_INSTANCE_URL $(BIN)/dg check defs
	env -u DAKTELA_ACCESS_TOKEN -u DAKTELA_INSTANCE_URL $(BIN)/dg list defs > /dev/null

## make dev: the Dagster UI wired to the simulator and the demo CRM.
dev: $(STAMP)
	$(BIN)/crmsync dev --data-dir $(DATA_DIR) --simulator-port $(SIMULATOR_PORT)

bench: $(STAMP)
	$(BIN)/python bench/mapping_bench.py
	$(BIN)/python bench/daktela_read_bench.py
	$(BIN)/python bench/crm_iter_bench.py
	$(BIN)/python bench/pipeline_bench.py --defaults --scale 10000,50000,200000
	$(BIN)/python bench/webhook_bench.py
	$(BIN)/python bench/activities_bench.py
	$(BIN)/python bench/raynet_bench.py
	$(BIN)/python bench/hubspot_bench.py
	$(BIN)/python bench/inbox_lease_bench.py

# dlt lives in a venv of its own (.bench-dlt/): it is no crmsync dependency, and neither
# `make test` nor `make bench` installs it.
DLT_VENV := .bench-dlt
DLT_REQUIREMENT := dlt[duckdb,parquet]>=1.0

$(DLT_VENV)/.installed: | $(UV)
	$(UV) venv --clear --python $(PYTHON) $(DLT_VENV)
	$(UV) pip install --python $(DLT_VENV)/bin/python '$(DLT_REQUIREMENT)'
	touch $@

## make bench-dlt: crmsync's activities extract side by side with dlt's rest_api (installs dlt into .bench-dlt/).
bench-dlt: $(STAMP) $(DLT_VENV)/.installed
	$(BIN)/python bench/dlt_activities_bench.py --dlt-python $(DLT_VENV)/bin/python

clean:
	rm -rf $(DATA_DIR) .pytest_cache .mypy_cache .ruff_cache
