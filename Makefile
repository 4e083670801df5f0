# ZTOS build, test and demo entry points. Both `make demo` and `make test`
# install everything they need on a fresh Debian 12 machine (run as root).

PYTHON ?= /usr/bin/python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help deps venv lint typecheck test unit integration demo bench clean

help:
	@echo "make demo   install everything, bring up a 4-host lab and verify it"
	@echo "make test   install everything, run linters, type checks, layer contracts and all tests"
	@echo "make bench  run the benchmarks in bench/"

deps:
	./scripts/install-debian-deps.sh

$(STAMP): pyproject.toml
	@test -x $(PYTHON) || { echo "need $(PYTHON) (Python 3.11): run make deps"; exit 1; }
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: deps $(STAMP)

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

# ZTOS_FORBID_SKIPS=1: a skipped test fails the run (CI has every component).
# pytest exits 5 when no test ran; make treats any non-zero exit as failure.
test: lint typecheck
	ZTOS_FORBID_SKIPS=1 $(BIN)/pytest -q -p no:cacheprovider

unit: venv
	$(BIN)/pytest -q tests/unit tests/contract

demo: venv
	./scripts/demo.sh

bench: venv
	$(BIN)/python bench/enroll_watch.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
