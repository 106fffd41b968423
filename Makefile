# Two jobs for a fresh Linux machine: `make drive` (the main job) and `make test`.
# Both create or update the local virtualenv .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kaido-installed
OUT ?= out
TORCH_VERSION := 2.13.0
DEBIAN_PACKAGES := libusb-1.0-0
DEBIAN_OPTIONAL := chromium
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: all venv drive test lint typecheck pytest bench clean system-deps

all: test

system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get install -y -q $$missing >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null)) || \
	    { echo "error: apt-get could not install:$$missing" >&2; exit 1; }; \
	  else \
	    echo "note: Debian packages missing:$$missing (run 'sudo apt-get install$$missing'); the core stack works without them" >&2; \
	  fi; \
	fi
	@for p in $(DEBIAN_OPTIONAL); do \
	  dpkg -s $$p >/dev/null 2>&1 && continue; \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "installing the optional Debian package $$p (report tests)"; \
	    apt-get install -y -q $$p >/dev/null 2>&1 || \
	      (apt-get update -q >/dev/null && apt-get install -y -q $$p >/dev/null 2>&1) || \
	      echo "note: could not install $$p; the tests that need it skip" >&2; \
	  else \
	    echo "note: optional Debian package $$p missing (its tests skip)" >&2; \
	  fi; \
	done

$(STAMP): setup.cfg pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

drive: $(STAMP)
	$(VENV)/bin/kaido drive --out $(OUT)/drive

lint: $(STAMP)
	$(VENV)/bin/ruff check kaido tests benchmarks
	$(VENV)/bin/ruff format --check kaido tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy kaido

pytest: $(STAMP)
	$(PY) -m pytest -q

test: lint typecheck pytest

bench: $(STAMP)
	$(VENV)/bin/kaido bench raster --out $(OUT)/bench
	$(VENV)/bin/kaido bench raycast --out $(OUT)/bench
	$(VENV)/bin/kaido bench sim --out $(OUT)/bench
	$(VENV)/bin/kaido bench planner --out $(OUT)/bench

clean:
	rm -rf $(VENV) .cache build *.egg-info
