# Quick start: `make demo` runs the main job, `make test` runs the checks and tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench docs warmup clean pg-server

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,plot,distributed,docs,postgres]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/allocator demo

warmup: $(STAMP)
	$(BIN)/allocator warmup

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy src

test: lint docs pg-server
	$(BIN)/python -m pytest -q -m "not extended"

# The PostgreSQL tests start a throwaway server of their own from Debian's postgresql-15
# binaries (initdb, pg_ctl); a machine without them gets the package. A developer may opt
# out with ALLOCATOR_TEST_POSTGRES=0 (the PostgreSQL tests are then skipped, and say so).
pg-server:
	@if [ "$$ALLOCATOR_TEST_POSTGRES" = 0 ] || command -v initdb >/dev/null 2>&1 \
	  || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; else \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q postgresql-15; \
	fi

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-enable -q

# Warnings are errors: a broken page, reference or docstring fails the build (and CI).
docs: $(STAMP)
	$(BIN)/sphinx-build -q -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) docs/_build .pytest_cache .mypy_cache .ruff_cache
