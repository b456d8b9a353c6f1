# The two commands: `make run` serves Lumina, `make test` runs every check.
# Both create .venv and install what they need on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint imports pytest console browser worker beat bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

run: $(VENV)/.runtime console  ## migrate, ensure an admin, serve on LUMINA_HOST:LUMINA_PORT
	$(BIN)/python manage.py serve

test: $(VENV)/.dev lint imports pytest  ## lint, import boundaries, tests with coverage

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

imports: $(VENV)/.dev
	$(BIN)/lint-imports

OIDC_PROVIDER := tests/security/oidc_provider

# A real OpenID provider (npm oidc-provider) for the OIDC login tests.
$(OIDC_PROVIDER)/node_modules/.installed: $(OIDC_PROVIDER)/package-lock.json
	cd $(OIDC_PROVIDER) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

YJS_CLIENT := tests/ui/yjs_client

# Stock Yjs websocket clients (npm yjs, y-websocket, ws) for the document sync tests and
# benchmarks/collab.py.
$(YJS_CLIENT)/node_modules/.installed: $(YJS_CLIENT)/package-lock.json
	cd $(YJS_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

CONSOLE_STATIC := lumina/ui/static/console

# The web console's JavaScript and CSS: npm packages locked in frontend/package-lock.json,
# bundled by esbuild (one entry per page, shared chunks) into files Lumina serves itself.
frontend/node_modules/.installed: frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CONSOLE_STATIC)/manifest.json: frontend/node_modules/.installed frontend/build.mjs $(wildcard frontend/src/*)
	cd frontend && node build.mjs

console: $(CONSOLE_STATIC)/manifest.json  ## build the console's bundles

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads one).
# Without it, and without root to install it, the set-up fails rather than skip the tests.
/usr/bin/chromium:
	@if [ "$$(id -u)" != 0 ]; then echo "Install Debian's chromium (apt-get install chromium) as root." >&2; exit 1; fi
	DEBIAN_FRONTEND=noninteractive apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium

browser: /usr/bin/chromium

# pytest-xdist workers: most tests wait on PostgreSQL, servers and subprocesses, so two
# workers keep two cores busy. Each worker has its own test database (tests/conftest.py).
PYTEST_WORKERS ?= 2

pytest: $(VENV)/.dev $(OIDC_PROVIDER)/node_modules/.installed $(YJS_CLIENT)/node_modules/.installed console browser
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=25 \
		--cov --cov-report=term-missing:skip-covered

worker: $(VENV)/.runtime  ## a Celery worker (LUMINA_EVENT_TRANSPORT=celery)
	$(BIN)/celery -A config worker --loglevel=INFO

beat: $(VENV)/.runtime  ## Celery beat: periodic outbox relay
	$(BIN)/celery -A config beat --loglevel=INFO --schedule=var/celerybeat-schedule

bench: $(VENV)/.dev $(YJS_CLIENT)/node_modules/.installed  ## every benchmark script, each printing its table
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:  ## remove the virtualenv (var/ keeps the database)
	rm -rf $(VENV)
