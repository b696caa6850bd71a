# psmon: the two commands of the README, and their parts.
#   make demo   set up and run the embedded demo (broker, worker, sink, simulator, chDB, metrics, live view)
#   make test   set up and run the whole test suite (lint, types, unit and integration tests)
#   make bench  the performance benchmark (README "Performance"); BENCH_ARGS="--smoke" for a quick one
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint typecheck unit integration bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "psmon needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/psmon up

lint: setup
	$(BIN)/ruff check psmon tests benchmarks
	$(BIN)/ruff format --check psmon tests benchmarks

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest tests/integration

bench: setup
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

test: lint typecheck
	$(BIN)/pytest

clean:
	rm -rf $(VENV) psmon-data .pytest_cache .mypy_cache .ruff_cache
