# ledgermesh: `make demo` runs two validators on loopback; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint types contracts unit bench bench-payments bench-offers bench-sim-floor clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m tools.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest

test: lint types contracts unit

bench: $(STAMP)
	$(BIN)/python -m tools.bench_snap
	$(BIN)/python -m tools.bench_ledger

bench-payments: $(STAMP)
	$(BIN)/python -m tools.bench_payments

bench-offers: $(STAMP)
	$(BIN)/python -m tools.bench_offers

bench-sim-floor: $(STAMP)
	$(BIN)/python -m tools.bench_sim_floor

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
