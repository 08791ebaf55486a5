# Two commands for a new user: `make run` and `make test`. Both create .venv and install pinned requirements.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint typecheck unit bench clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime
	$(PY) -m app serve --host 127.0.0.1 --port 8000

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy

test: lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

$(VENV)/.bench: $(VENV)/.dev requirements-bench.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-bench.txt
	touch $@

# The ingestion benchmark loads the service with wrk (Debian package); installed here when we may.
bench: $(VENV)/.bench
	@command -v wrk >/dev/null || [ "$$(id -u)" != 0 ] || apt-get install -y -q wrk || \
		(apt-get update -q && apt-get install -y -q wrk)
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# PostgreSQL ingestion benchmark (issue 7): service vs raw psycopg on the same rows; docs/benchmarks.md.
.PHONY: bench-postgres
bench: bench-postgres
bench-postgres: $(VENV)/.dev
	$(PY) -m bench.postgres_bench $(BENCH_POSTGRES_ARGS)
