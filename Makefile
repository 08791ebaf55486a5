# Two commands for a new user: `make run` and `make test`. Both create .venv and install pinned requirements.
# `make demo` fills a separate demo database with a simulated month and builds the HTML report from it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# The demo's own database: never the service's live one (data/telemetry.db by default).
DEMO_DIR ?= data/demo
DEMO_EVENTS ?= 200000
DEMO_DAYS ?= 30
# uv, pinned in requirements-tools.txt, installs the same pinned requirements as pip in a fraction of the time.
# --compile-bytecode: uv writes no .pyc by default, and with PYTHONDONTWRITEBYTECODE set (as on CI machines) every
# process would compile FastAPI, pydantic, pandas... again at each start: `import app.main` 2.1 s -> 0.8 s.
INSTALL = $(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY)

.PHONY: run test lint typecheck unit fast bench clean demo analysis-deps config-doc

$(VENV)/.installer: requirements-tools.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-tools.txt
	touch $@

$(VENV)/.runtime: $(VENV)/.installer requirements.txt
	$(INSTALL) -r requirements.txt
	touch $@

$(VENV)/.analysis: $(VENV)/.runtime requirements-analysis.txt
	$(INSTALL) -r requirements-analysis.txt
	touch $@

$(VENV)/.dev: $(VENV)/.analysis requirements-dev.txt
	$(INSTALL) -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime
	$(PY) -m app serve --host $(HOST) --port $(PORT)

# What `report` and the notebook need on top of `make run`'s environment (the simulator's progress bar too).
analysis-deps: $(VENV)/.analysis
	@echo "analysis-deps: requirements-analysis.txt is installed in $(VENV): python -m app report works"

# Timed from the moment make reads this Makefile, so the installs count too.
DEMO_STARTED := $(shell date +%s)
demo: $(VENV)/.analysis
	rm -f $(DEMO_DIR)/demo.db $(DEMO_DIR)/demo.db-wal $(DEMO_DIR)/demo.db-shm $(DEMO_DIR)/report.html
	mkdir -p $(DEMO_DIR)
	$(PY) -m app simulate --events $(DEMO_EVENTS) --days $(DEMO_DAYS) --workers 2 \
		--database-url sqlite:///$(DEMO_DIR)/demo.db
	$(PY) -m app report --database-url sqlite:///$(DEMO_DIR)/demo.db --out $(DEMO_DIR)/report.html
	@echo
	@echo "demo: done in $$(( $$(date +%s) - $(DEMO_STARTED) )) s, installs included: $(DEMO_EVENTS) simulated events in $(DEMO_DIR)/demo.db"
	@echo "demo: report  $(abspath $(DEMO_DIR))/report.html"
	@echo "demo: open    file://$(abspath $(DEMO_DIR))/report.html"
	@echo "demo: or run  $(PY) -m http.server --directory $(DEMO_DIR) 8001  and browse http://127.0.0.1:8001/report.html"
	@echo "demo: events  make run TELEMETRY_DATABASE_URL=sqlite:///$(DEMO_DIR)/demo.db  then http://127.0.0.1:$(PORT)/"

# docs/configuration.md is generated from app/config.py's Settings; a test fails when the page drifts.
config-doc: $(VENV)/.runtime
	$(PY) scripts/config_doc.py

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy

test: lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

# Seconds, while editing: the rules and the service on fakes (tests/unit); no server, no database server.
unit: $(VENV)/.dev
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

# Before a commit: unit tests, lint, types, and every route in process (tests/routes); no subprocess.
fast: lint typecheck
	$(PY) -m pytest tests/unit tests/routes -q $(PYTEST_ARGS)

$(VENV)/.bench: $(VENV)/.dev requirements-bench.txt
	$(INSTALL) -r requirements-bench.txt
	touch $@

# The ingestion benchmark loads the service with wrk (Debian package); installed here when we may.
bench: $(VENV)/.bench
	@command -v wrk >/dev/null || [ "$$(id -u)" != 0 ] || apt-get install -y -q wrk || \
		(apt-get update -q && apt-get install -y -q wrk)
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# PostgreSQL ingestion benchmark: service vs raw psycopg on the same rows; docs/benchmarks.md.
.PHONY: bench-postgres
bench: bench-postgres
bench-postgres: $(VENV)/.dev
	$(PY) -m bench.postgres_bench $(BENCH_POSTGRES_ARGS)
