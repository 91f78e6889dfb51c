# Quick start: `make demo` runs the live demo, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench system-deps clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "otel-sse needs Python >= 3.11 (found $$($(PYTHON) --version))"; exit 1; }
	@if ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing python3-venv (needed by $(PYTHON) -m venv)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; \
	  else \
	    echo "$(PYTHON) cannot create a virtual environment (no ensurepip/venv): install python3-venv, e.g. sudo apt-get install python3-venv"; exit 1; \
	  fi; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,fast,redis]'
	@touch $(STAMP)

# System tools the tests drive as real peers: curl with HTTP/2, Chromium (the
# dashboard's tests run it headless through Playwright, which never downloads a browser)
# and redis-server (the Redis Streams bus is tested against a real one).
system-deps:
	@missing=""; \
	curl --version 2>/dev/null | grep -q HTTP2 || missing="$$missing curl"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing system packages:$$missing (install them, e.g. sudo apt-get install$$missing)"; exit 1; \
	  fi; \
	fi

demo: $(STAMP)
	$(VENV)/bin/otel-sse demo

lint: $(STAMP)
	$(VENV)/bin/ruff check otel_sse tests bench examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP) system-deps
	$(VENV)/bin/pytest -q

test: lint typecheck pytest

# Each benchmark measures the peers in the same run and rewrites its section of
# bench/RESULTS.md (about 80 minutes in all; run it on a quiet machine).
bench: $(STAMP) system-deps
	$(PY) bench/fanout.py --repeat 3 --write
	$(PY) bench/client.py --events 200000 --repeat 5 --write
	$(PY) bench/overhead.py --reps 41 --ops 2000 --write
	$(PY) bench/dashboard.py --duration 600 --write
	$(PY) bench/scaleout.py --write
	$(PY) bench/ingest.py --repeat 3 --write
	$(PY) bench/abuse.py --repeat 3 --write

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
