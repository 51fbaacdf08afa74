# jobsite — the two commands are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The lock: uv.lock (every platform, every extra), exported for pip as
# requirements/dev.txt (runtime + ocr + test + docs + observability: the venv),
# requirements/image.txt (runtime + ocr + observability: the Docker image) and
# requirements/runtime.txt (runtime alone: a smaller image, see Dockerfile).
# docs/operations/dependencies.md says how it works and how to update it.
LOCKED := requirements/dev.txt
PIP_VERSION := 26.3
# uv makes the lock (`make lock`) and the throwaway venv of `make test-latest`;
# installs need only pip. Pinned, in a venv of its own under var/.
UV_VERSION := 0.13.9
UV_DIR := var/uv-$(UV_VERSION)
UV     := $(UV_DIR)/bin/uv
LATEST := var/latest-venv

.PHONY: run test test-quick fuzz venv lock lock-check test-latest migrate lint benchmarks clean

## make venv: .venv with exactly the locked versions (pip --require-hashes from
## requirements/dev.txt); redone when the lock or pyproject.toml changes
venv: $(STAMP)

$(STAMP): $(LOCKED) pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet pip==$(PIP_VERSION)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCKED)
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m jobsite.versions $(LOCKED)
	@touch $(STAMP)

$(UV):
	$(PYTHON) -m venv $(UV_DIR)
	$(UV_DIR)/bin/python -m pip install --quiet uv==$(UV_VERSION)

## make lock: uv.lock and its exports under requirements/ from pyproject.toml (commit all
## four). Keeps every pin that still fits the ranges: add, remove or narrow a dependency
## in pyproject.toml, then make lock. UPGRADE=1: the newest versions inside the ranges for
## every package; UPGRADE=celery: for that one (and what it needs).
lock: $(UV)
	$(UV) lock $(if $(filter 1 all,$(UPGRADE)),--upgrade,$(if $(UPGRADE),--upgrade-package $(UPGRADE)))
	@mkdir -p requirements
	$(UV) export --quiet --frozen --no-emit-project --all-extras -o requirements/dev.txt
	$(UV) export --quiet --frozen --no-emit-project -o requirements/runtime.txt
	$(UV) export --quiet --frozen --no-emit-project --extra ocr --extra observability -o requirements/image.txt

## make lock-check: fail when pyproject.toml or requirements/ no longer match uv.lock
lock-check: $(UV)
	$(UV) lock --check
	@for args in "dev --all-extras" "runtime" "image --extra ocr --extra observability"; do \
		set -- $$args; file=requirements/$$1.txt; shift; \
		$(UV) export --quiet --frozen --no-emit-project "$$@" | grep -v '^ *#' > var/lock-check.txt; \
		grep -v '^ *#' $$file | cmp -s - var/lock-check.txt \
			|| { echo "$$file is not uv.lock's export: run make lock"; rm -f var/lock-check.txt; exit 1; }; \
	done; rm -f var/lock-check.txt; echo "uv.lock and requirements/ match pyproject.toml"

## make test-latest: the suite against the newest versions pyproject.toml's ranges allow
## today (not the lock), in a throwaway venv (var/latest-venv, made anew each time); first
## lists the versions that differ from the lock. Run it weekly and before make lock
## UPGRADE=1 (docs/operations/dependencies.md). PYTEST_ARGS narrows it as for make test.
test-latest: $(UV)
	rm -rf $(LATEST)
	$(UV) venv --quiet --python $(PYTHON) $(LATEST)
	$(UV) pip install --quiet --python $(LATEST)/bin/python --refresh --all-extras -r pyproject.toml
	$(UV) pip install --quiet --python $(LATEST)/bin/python --no-deps -e .
	@$(LATEST)/bin/python -m jobsite.versions $(LOCKED) || true
ifeq ($(strip $(PYTEST_ARGS)),)
	$(LATEST)/bin/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=25 --ignore=tests/jobsite/test_fuzz_openapi.py
	$(LATEST)/bin/python -m pytest --durations=25 tests/jobsite/test_fuzz_openapi.py
else
	$(LATEST)/bin/python -m pytest $(PYTEST_ARGS)
endif

## make run: migrate, default jobs, local admin + JWT, Redis, web, worker, beat (Ctrl-C stops all)
## make run PORT=8080 REDIS_PORT=6391: other ports for the web server and the embedded Redis
run: venv
	@$(PY) manage.py runstack $(if $(PORT),--port $(PORT)) $(if $(REDIS_PORT),--redis-port $(REDIS_PORT))

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
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=25 --ignore=tests/jobsite/test_fuzz_openapi.py
	$(PY) -m pytest --durations=25 tests/jobsite/test_fuzz_openapi.py
else
	$(PY) -m pytest $(PYTEST_ARGS)
endif

## make test-quick: the fast tier, for the edit-test loop: every test but those that
## start real processes (a Celery worker, beat, runstack: marked e2e) or a browser,
## and but the schema fuzzing. `make test` stays the full check.
test-quick: venv
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=10 -m 'not e2e and not faults and not browser' \
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

## make docs: the documentation site (mkdocs.yml, docs/) on http://127.0.0.1:$(DOCS_PORT)/,
## offline, reloaded as the pages change; tests/docs builds it with --strict
DOCS_PORT ?= 8001
.PHONY: docs
docs: venv
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

clean:
	rm -rf $(VENV) var/*.sqlite3* var/redis
