# Quanzi — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test test-sqlite lint schema bench bench-quick migrate clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

# Serve the whole system on embedded defaults (SQLite, in-memory channel layer, eager tasks) with demo data.
run: install
	DEBUG=1 $(PY) manage.py migrate --noinput
	DEBUG=1 $(PY) manage.py seed_demo
	@echo ""
	@echo "  Quanzi is starting on http://$(HOST):$(PORT)"
	@echo "  GraphQL:   http://$(HOST):$(PORT)/graphql/   (GraphiQL in the browser)"
	@echo "  WebSocket: ws://$(HOST):$(PORT)/ws/"
	@echo "  Admin:     http://$(HOST):$(PORT)/admin/     phone +8613800000099, password quanzi-demo-2026"
	@echo "  Log in:    requestLoginCode(phone: \"+8613800000001\") prints the SMS code here, then loginWithCode;"
	@echo "             or loginWithPassword with password quanzi-demo-2026 (demo users +86138000000{01,02,03,10})"
	@echo ""
	DEBUG=1 $(PY) -m daphne -b $(HOST) -p $(PORT) backend.asgi:application

# The whole suite, on whatever DATABASE_URL / REDIS_URL say (CI: PostgreSQL + Redis, REQUIRE_SERVICES=1).
test: install lint
	$(PY) -m pytest

# The same suite on the embedded defaults (SQLite, in-memory layer), whatever the environment says. The `slow`
# tests (fuzzing, fault injection: real Daphne nodes, private Redis servers) run in `make test` only.
test-sqlite: install
	env -u DATABASE_URL -u REDIS_URL -u REQUIRE_SERVICES $(PY) -m pytest -m "not slow"

lint: install
	$(VENV)/bin/ruff check backend tests bench
	$(VENV)/bin/lint-imports

schema: install
	DEBUG=1 $(PY) manage.py graphql_schema --schema backend.schema.schema --out graphql/schema.graphql

# Benchmarks (PostgreSQL and Redis on 127.0.0.1 required): every bench, one table of every figure, and
# bench/results/latest.json. The list of benches is bench/run.py's BENCHES. bench-quick: the same figures, shorter.
bench: install
	$(PY) bench/run.py

bench-quick: install
	BENCH_QUICK=1 $(PY) bench/run.py

migrate: install
	DEBUG=1 $(PY) manage.py migrate --noinput

clean:
	rm -rf $(VENV) quanzi.sqlite3* .test-db.sqlite3*
