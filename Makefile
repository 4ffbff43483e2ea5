# dvc-gateway — the two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run run-deps test lint lock wheelhouse typecheck audit pytest bench system-deps kafka-up kafka-down clean dashboard monitoring-check

# the runtime set is pinned by requirements.lock (the image installs the same pins); pip refuses hashes in a
# constraints file, so the venv gets the pins without them
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	sed -e '/--hash=/d' -e 's/ *\\$$//' requirements.lock > $(VENV)/constraints.txt
	$(BIN)/pip install -q -c $(VENV)/constraints.txt -e '.[dev]' 2>&1 | grep -v -e BuildBackendWarning -e '^ ' || true
	$(BIN)/python -c 'import gateway, aiohttp, pyhanko, aiokafka'
	touch $(STAMP)

install: $(STAMP)

run: run-deps $(STAMP)
	@bash scripts/run.sh

# python3-venv and curl, if missing (a fresh Debian has neither); `make test` installs the rest
run-deps:
	@bash scripts/install-system-deps.sh run

system-deps:
	@bash scripts/install-system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy core gateway adapters signing queues config monitoring audit

pytest: $(STAMP) wheelhouse
	@bash scripts/test.sh

# known vulnerabilities of the locked dependency set (pip-audit; docs/security.md, Dependencies)
audit: $(STAMP)
	$(BIN)/python scripts/audit.py

# requirements.lock from the venv's installed runtime set (after changing pyproject.toml's dependencies)
lock: $(STAMP)
	$(BIN)/python scripts/lock.py

# the locked wheels, hash-checked, for the offline clean-venv wheel test (tests/ship/test_wheel.py)
WHEELHOUSE := .cache/wheelhouse
wheelhouse: $(WHEELHOUSE)/.stamp
$(WHEELHOUSE)/.stamp: requirements.lock $(STAMP)
	rm -rf $(WHEELHOUSE) && mkdir -p $(WHEELHOUSE)
	$(BIN)/pip download -q --require-hashes --no-deps -r requirements.lock -d $(WHEELHOUSE)
	touch $@

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
