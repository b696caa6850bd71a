# psmon: the two commands of the README, and their parts.
#   make demo   set up and run the embedded demo (broker, worker, sink, simulator, chDB, metrics, live view)
#   make test   set up and run the whole test suite (lint, types, unit and integration tests)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup sysdeps demo test lint typecheck unit integration clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "psmon needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Debian's Prometheus and Alertmanager (with promtool, amtool) for the dashboard and deploy tests;
# tolerant: where they cannot be installed, the tests that need them are skipped with the reason.
sysdeps:
	@command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null || \
	  { (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager) \
	    >/dev/null 2>&1 || echo "sysdeps: prometheus/prometheus-alertmanager not installed; their tests are skipped"; }

demo: setup
	$(BIN)/psmon up

lint: setup
	$(BIN)/ruff check psmon tests
	$(BIN)/ruff format --check psmon tests

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest tests/unit

integration: setup sysdeps
	$(BIN)/pytest tests/integration

test: lint typecheck sysdeps
	$(BIN)/pytest

clean:
	rm -rf $(VENV) psmon-data .pytest_cache .mypy_cache .ruff_cache
