# jobsite — the two commands are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test venv migrate lint benchmarks clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

## make run: migrate, default jobs, local admin + JWT, Redis, web, worker, beat (Ctrl-C stops all)
run: venv
	$(PY) manage.py runstack

## make test: the whole suite against a real Redis and a real Celery worker
test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

migrate: venv
	$(PY) manage.py migrate

benchmarks: venv
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) var/*.sqlite3* var/redis
