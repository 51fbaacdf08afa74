# jobsite — the two commands are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-quick fuzz venv migrate lint benchmarks clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,ocr]'
	@touch $(STAMP)

## make run: migrate, default jobs, local admin + JWT, Redis, web, worker, beat (Ctrl-C stops all)
run: venv
	$(PY) manage.py runstack

## make test: the whole suite against a real Redis and a real Celery worker, in
## PYTEST_WORKERS processes (pytest-xdist; each its own Redis and test database; 0:
## one process), then the schema fuzzing on its own (schemathesis's generated tests
## do not survive xdist). With PYTEST_ARGS: pytest $(PYTEST_ARGS), in one process.
## (the browser tests want Debian's chromium + chromium-driver: installed here when
## missing, as root with apt-get; elsewhere those tests skip and say why)
# Three processes on a 2-core machine: most of the end-to-end tests wait on beat
# intervals and real workers, so a third process fills the cores while they wait.
PYTEST_WORKERS ?= 3
test: venv
	@if { ! command -v chromium || ! command -v chromedriver; } >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "Installing chromium and chromium-driver for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
			|| echo "chromium could not be installed: the browser tests will skip"; \
	fi
ifeq ($(strip $(PYTEST_ARGS)),)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=25 --ignore=tests/jobsite/test_fuzz_openapi.py
	$(PY) -m pytest --durations=25 tests/jobsite/test_fuzz_openapi.py
else
	$(PY) -m pytest $(PYTEST_ARGS)
endif

## make test-quick: the fast tier, for the edit-test loop: every test but those that
## start real processes (a Celery worker, beat, runstack: marked e2e) or a browser,
## and but the schema fuzzing. `make test` stays the full check.
test-quick: venv
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=10 -m 'not e2e and not faults and not browser' \
		--ignore=tests/jobsite/test_fuzz_openapi.py $(PYTEST_ARGS)

## make fuzz: schemathesis against the OpenAPI schema, 200 examples per operation with
## the coverage phase's boundary values, then stateful call sequences along the schema's
## links (4 scenarios per example); prints how many requests reached existing objects.
## (`make test` runs the same file with 8 and no coverage phase; FUZZ_MAX_EXAMPLES=N,
## FUZZ_COVERAGE=0|1 to change either)
fuzz: venv
	FUZZ_MAX_EXAMPLES=$${FUZZ_MAX_EXAMPLES:-200} FUZZ_COVERAGE=$${FUZZ_COVERAGE:-1} \
		$(PY) -m pytest tests/jobsite/test_fuzz_openapi.py $(PYTEST_ARGS)

migrate: venv
	$(PY) manage.py migrate

benchmarks: venv
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) var/*.sqlite3* var/redis
