# The two commands: `make demo` and `make test` (see README.md).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
DATA_DIR ?= data

.PHONY: demo test dev lint typecheck defs-check unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make demo: simulator + demo CRM + one real Dagster run of every asset, then a summary.
demo: $(STAMP)
	$(BIN)/crmsync demo --data-dir $(DATA_DIR)

## make test: linters, type check, definitions check and the whole test suite.
test: $(STAMP) lint typecheck defs-check
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check crmsync_pipelines crmsync_tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

defs-check: $(STAMP)
	env -u DAKTELA_ACCESS_TOKEN -u DAKTELA_INSTANCE_URL $(BIN)/dagster definitions validate -w workspace.yaml

## make dev: the Dagster UI wired to the simulator and the demo CRM.
dev: $(STAMP)
	$(BIN)/crmsync dev --data-dir $(DATA_DIR)

bench: $(STAMP)
	$(BIN)/python bench/mapping_bench.py
	$(BIN)/python bench/daktela_read_bench.py
	$(BIN)/python bench/crm_iter_bench.py
	$(BIN)/python bench/pipeline_bench.py
	$(BIN)/python bench/webhook_bench.py

clean:
	rm -rf $(DATA_DIR) .pytest_cache .mypy_cache .ruff_cache
