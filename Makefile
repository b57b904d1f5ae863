# Real-Time Crypto: the two commands are `make up` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up down status test test-unit lint typecheck format venv clean bench

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@command -v java >/dev/null || { echo "error: java (17+) is required: apt-get install openjdk-17-jre-headless"; exit 2; }
	@command -v mvn >/dev/null || { echo "error: maven is required: apt-get install maven"; exit 2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools
	$(BIN)/pip install -r requirements.txt -c constraints.txt
	$(BIN)/pip install -q -e . --no-deps
	@touch $@

venv: $(STAMP)

## Bring the embedded platform up (Kafka, simulator, ingest, Spark liquidity) and show records.
up: $(STAMP)
	$(BIN)/rtc up

down: $(STAMP)
	$(BIN)/rtc down

status: $(STAMP)
	$(BIN)/rtc status

## Lint, then every test suite: unit, integration (real Kafka + Spark), slow and fault tests.
test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -m "not integration and not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m bench.ingest_throughput
	$(BIN)/python -m bench.liquidity_latency
	$(BIN)/python -m bench.backtest_throughput

clean:
	rm -rf .rtc/run .rtc/logs
