# psmon: the two commands of the README, and their parts.
#   make demo   set up and run the embedded demo (broker, worker, sink, simulator, chDB, metrics, live view)
#   make test   set up and run the whole test suite (lint, types and unit tests beside the integration tests)
#   make sysdeps  Prometheus, Alertmanager, promtool, amtool, headless Chromium (Debian packages; `test` runs it)
#   make bench  the performance benchmark (docs/performance.md); BENCH_ARGS="--smoke" for a quick one
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup sysdeps demo test lint typecheck unit integration bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "psmon needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Debian's Prometheus and Alertmanager (with promtool, amtool) and headless Chromium: the alerting,
# dashboard and deploy tests run the real binaries, and a report test renders the HTML report. Installed when missing (sudo only when not root); a failed install
# fails the target, since those tests must not be skipped.
sysdeps:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null && command -v amtool >/dev/null \
	    && { command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null; } \
	    && { command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null; }; then \
	  echo "sysdeps: Prometheus, Alertmanager and headless Chromium are installed"; \
	else \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	    prometheus prometheus-alertmanager chromium-headless-shell; \
	fi

demo: setup
	$(BIN)/psmon up

lint: setup
	$(BIN)/ruff check psmon tests benchmarks testkit
	$(BIN)/ruff format --check psmon tests benchmarks testkit

typecheck: setup
	$(BIN)/mypy

unit: setup sysdeps
	$(BIN)/pytest tests/unit

integration: setup sysdeps
	$(BIN)/pytest tests/integration

bench: setup
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# The whole suite in two halves at once, so both of CI's cores work: lint, types and the unit
# tests (CPU-bound) beside the integration tests (mostly waiting on servers and psmon processes).
# The first half's output is printed when the second ends; the target fails if either fails.
test: setup sysdeps
	@set +e; \
	( $(MAKE) --no-print-directory lint typecheck && $(BIN)/pytest tests/unit ) > $(VENV)/unit-tests.log 2>&1 & \
	first=$$!; \
	echo "lint, types and unit tests: running beside the integration tests (log: $(VENV)/unit-tests.log)"; \
	$(BIN)/pytest tests/integration; integration=$$?; \
	wait $$first; unit=$$?; \
	echo "================ lint, types and unit tests ================"; cat $(VENV)/unit-tests.log; \
	echo "make test: integration tests exit $$integration; lint, types and unit tests exit $$unit"; \
	[ $$integration -eq 0 ] && [ $$unit -eq 0 ]

clean:
	rm -rf $(VENV) psmon-data .pytest_cache .mypy_cache .ruff_cache
