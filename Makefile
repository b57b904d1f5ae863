# Real-Time Crypto: the two commands are `make up` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up down status test test-cluster test-unit faults lint typecheck format venv clean bench browser

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
test: $(STAMP) browser cluster-packages lint typecheck
	$(BIN)/python -m pytest

## Debian's Chromium + ChromeDriver for the browser test of the Airflow UI: installed with
## apt-get (as root) only when missing, so it costs nothing once they are there.
CHROMIUM_PACKAGES := chromium chromium-driver
CHROMIUM_BIN ?= /usr/bin/chromium
CHROMEDRIVER_BIN ?= /usr/bin/chromedriver
browser:
	@if [ -x $(CHROMIUM_BIN) ] && [ -x $(CHROMEDRIVER_BIN) ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "error: $(CHROMIUM_BIN) is missing and installing it needs root:" \
			"sudo apt-get install -y --no-install-recommends $(CHROMIUM_PACKAGES)" >&2; exit 2; fi; \
	command -v apt-get >/dev/null || { echo "error: $(CHROMIUM_BIN) is missing and there is" \
		"no apt-get: install Chromium and ChromeDriver at $(CHROMIUM_BIN) and" \
		"$(CHROMEDRIVER_BIN)" >&2; exit 2; }; \
	echo "installing $(CHROMIUM_PACKAGES) with apt-get (browser test of the Airflow UI)"; \
	export DEBIAN_FRONTEND=noninteractive; \
	{ apt-get update -q && apt-get install -y -q --no-install-recommends $(CHROMIUM_PACKAGES); } \
		|| { echo "error: apt-get could not install $(CHROMIUM_PACKAGES) (see above):" \
			"check the Debian mirror, then run make browser again" >&2; exit 2; }; \
	test -x $(CHROMIUM_BIN) || { echo "error: apt-get finished but $(CHROMIUM_BIN) is" \
		"missing" >&2; exit 2; }

## Debian's PostgreSQL and Redis for the cluster topology's Airflow (issue 14): installed with
## apt-get (as root) only when missing, like `browser`.
CLUSTER_PACKAGES := postgresql redis-server
.PHONY: cluster-packages
cluster-packages:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ -x /usr/bin/redis-server ]; then \
		exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "error: PostgreSQL or Redis is missing and installing them needs root:" \
			"sudo apt-get install -y --no-install-recommends $(CLUSTER_PACKAGES)" >&2; exit 2; fi; \
	command -v apt-get >/dev/null || { echo "error: install PostgreSQL (initdb under" \
		"/usr/lib/postgresql/*/bin) and /usr/bin/redis-server: there is no apt-get" >&2; exit 2; }; \
	echo "installing $(CLUSTER_PACKAGES) with apt-get (the cluster topology's Airflow)"; \
	export DEBIAN_FRONTEND=noninteractive; \
	{ apt-get update -q && apt-get install -y -q --no-install-recommends $(CLUSTER_PACKAGES); } \
		|| { echo "error: apt-get could not install $(CLUSTER_PACKAGES) (see above):" \
			"check the Debian mirror, then run make cluster-packages again" >&2; exit 2; }

## The heavy cluster tests, outside `make test` for CI's time limit: `rtc up --topology cluster`
## end to end (about 20 min on two cores) and the Spark worker, Elasticsearch node and Celery
## worker / PostgreSQL faults (about 5 min together).
test-cluster: $(STAMP) cluster-packages
	$(BIN)/python -m pytest -m cluster_heavy

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -m "not integration and not slow"

## Every fuzz target of fuzz/targets/ (atheris), FUZZ_SECONDS each; the corpus grows in .rtc/fuzz/.
## `make test` runs each for 20 s (tests/fuzz/); a crash exits non-zero, its input in .rtc/fuzz/NAME/crashes.
.PHONY: fuzz
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	@for target in $$(PYTHONPATH=$(CURDIR) $(BIN)/python fuzz/run.py --list); do \
		PYTHONPATH=$(CURDIR) nice -n 10 $(BIN)/python fuzz/run.py $$target \
			--seconds $(FUZZ_SECONDS) || exit 1; \
	done

## The fault-injection suite only (kill -9 of broker, Spark and trader; Elasticsearch outage; ...).
faults: $(STAMP)
	$(BIN)/python -m pytest -m faults

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

## Soak test (not in CI): the whole platform for SOAK_MINUTES (60) at 10x Gemini's change rate;
## RSS, topic/index sizes, spool and lag every minute, memory slope and counts checked at the end.
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python -m bench.soak $(if $(SOAK_MINUTES),--minutes $(SOAK_MINUTES))

clean:
	rm -rf .rtc/run .rtc/logs
