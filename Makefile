# dvc-gateway — the two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck audit pytest bench system-deps kafka-up kafka-down clean dashboard monitoring-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]' 2>&1 | grep -v -e BuildBackendWarning -e '^ ' || true
	$(BIN)/python -c 'import gateway, aiohttp, pyhanko, aiokafka'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@bash scripts/run.sh

system-deps:
	@bash scripts/install-system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy core gateway adapters signing queues config monitoring

pytest: $(STAMP)
	@bash scripts/test.sh

# known vulnerabilities of the installed dependencies (pip-audit; docs/security.md, Dependencies)
audit: $(STAMP)
	$(BIN)/python scripts/audit.py

test: system-deps $(STAMP) lint typecheck audit pytest

# the Grafana dashboard is code: monitoring/grafana/build.py writes monitoring/grafana/dvc-gateway.json
dashboard: $(STAMP)
	$(BIN)/python -m monitoring.grafana.build

# the alert rules, their promtool unit tests and the dashboard's freshness (make test runs these too, in pytest)
monitoring-check: $(STAMP)
	promtool check rules monitoring/prometheus/alerts.yml
	promtool test rules monitoring/prometheus/tests/*.yml
	$(BIN)/python -m monitoring.grafana.build --check

bench: system-deps $(STAMP)
	@bash scripts/bench.sh

kafka-up:
	@bash scripts/kafka.sh start

kafka-down:
	@bash scripts/kafka.sh stop

clean:
	rm -rf $(VENV) var .cache .pytest_cache .mypy_cache .ruff_cache
