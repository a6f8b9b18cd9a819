# One command to run, one to test. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: install serve test lint typecheck unit crash-long bench bench-append bench-ingest bench-projections bench-scale clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run playerlog on http://127.0.0.1:8001 with ./playerlog.db (override with PLAYERLOG_DB).
serve: install
	$(VENV)/bin/playerlog serve

## Lint, type-check, and run the whole test suite (PostgreSQL tests included).
test: lint typecheck unit

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest

## The long crash test (by hand): many SIGKILLs under load.
crash-long: install
	PLAYERLOG_CRASH_ROUNDS=200 $(PY) -m pytest tests/eventstore/test_crash.py -q

## Benchmarks: figures beside their ceilings, as ratios.
bench: bench-append bench-ingest bench-projections bench-scale

bench-append: install
	$(PY) -m bench.append

bench-ingest: install
	$(PY) -m bench.ingest

bench-projections: install
	$(PY) -m bench.projections

## Scaled out: ingest with 1, 2, 4 API processes on PostgreSQL, the table lock's
## ceiling, delivery to NATS and webhooks (needs PostgreSQL, NATS and wrk).
bench-scale: install
	$(PY) -m bench.scale

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
