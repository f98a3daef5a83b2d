# Two entry points: `make run` forecasts and trains on the bundled real data; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BUDGET ?= standard
EVENTS ?= $(or $(UPGRADE_PREDICTOR_EVENTS),../shared/data/365_events)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench chromium postgresql clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

# The forecast from the event tables first (the business question), then the course's table.
run: $(VENV)/.installed
	$(BIN)/upgrade-predictor train --events $(EVENTS) --budget $(BUDGET) --out runs/events-$$(date +%Y%m%d-%H%M%S)
	$(BIN)/upgrade-predictor train --budget $(BUDGET)

# The report test opens the HTML in Debian's headless Chromium; install it when it is missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# The database tests start a throw-away PostgreSQL server of their own; Debian puts initdb in
# /usr/lib/postgresql/<version>/bin, off PATH.
postgresql:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; }

# Lint, types and the one-way import layers (pyproject's [tool.importlinter]) are part of the suite:
# a change that breaks them fails like a failing test.
test: $(VENV)/.dev-installed chromium postgresql
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

bench: $(VENV)/.dev-installed
	$(BIN)/python benchmarks/bench_training.py

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
