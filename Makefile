# The two commands a user needs: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
HASH := $(shell sha1sum pyproject.toml | cut -c1-12)
# Serving needs only the package; the test tools (dev extras) come with the first `make test`.
RUN_STAMP := $(VENV)/.installed-run-$(HASH)
STAMP := $(VENV)/.installed-dev-$(HASH)

.PHONY: run test test-docker check css screenshots lock

$(RUN_STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e .
	rm -f $(VENV)/.installed-*
	touch $@

$(STAMP): $(RUN_STAMP)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

## run: the studio on http://localhost:8080 (demo mode without keys; reads .env if present)
run: $(RUN_STAMP)
	$(VENV)/bin/volcimage serve

## test: quality gates, then the whole suite on SQLite and PostgreSQL with coverage
## (browser tests in a second run: Playwright's sync API owns the event loop of its process)
# some environments turn the bytecode cache off: each test process would compile the app again
test: export PYTHONDONTWRITEBYTECODE :=
test: $(STAMP)
	bash scripts/system-deps.sh
	bash scripts/check-assets.sh
	$(MAKE) --no-print-directory check
	$(VENV)/bin/pytest -n 2 --dist worksteal --durations=10 --cov --cov-report= --ignore=tests/e2e --ignore=tests/docker
	$(VENV)/bin/pytest -n 2 --dist worksteal --cov --cov-append --cov-report=term --cov-fail-under=85 tests/e2e

## test-docker: the image built and the compose stack run on a Docker engine of its own
## (installs Docker and debootstrap if missing; root; a few minutes)
test-docker: $(STAMP)
	VENV=$(VENV) bash scripts/docker-test.sh

check: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## screenshots: refresh docs/screenshots (desktop and phone, light and dark) and the guides' ones
screenshots: $(STAMP)
	$(PY) scripts/screenshots.py
	$(PY) scripts/guide_screenshots.py

## lock: regenerate requirements.lock (the image's pins, with hashes) from pyproject.toml
lock: $(STAMP)
	VENV=$(VENV) bash scripts/lock.sh

## css: rebuild the page's CSS and the vendored Alpine and Swagger UI from package.json
css:
	npm ci --no-audit --no-fund
	npm run build
