# ZTOS build, test and demo entry points. Both `make demo` and `make test`
# install everything they need on a fresh Debian 12 machine (run as root).

PYTHON ?= /usr/bin/python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help deps venv web web-if-missing lint typecheck test unit integration demo bench clean

help:
	@echo "make demo   install everything, bring up a 4-host lab and verify it"
	@echo "make test   install everything, run linters, type checks, layer contracts and all tests"
	@echo "make bench  run every benchmark in bench/ (about 20 minutes)"
	@echo "make web    rebuild the dashboard (web/ -> src/ztos/web/static) with npm"

deps:
	./scripts/install-debian-deps.sh

# deps/constraints.txt pins every Python dependency to what CI tested
# (regenerate with `.venv/bin/pip freeze --exclude-editable > deps/constraints.txt`).
$(STAMP): pyproject.toml deps/constraints.txt
	@test -x $(PYTHON) || { echo "need $(PYTHON) (Python 3.11): run make deps"; exit 1; }
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c deps/constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: deps $(STAMP) web-if-missing

# The dashboard (web/, TypeScript + Vite) is built into src/ztos/web/static and
# the result is committed, so machines without npm access still serve it.
# `make web` rebuilds it from the lockfile when its sources changed; venv/test
# only build it when the built files are missing.
WEB_SRC := $(shell find web/src -type f 2>/dev/null) web/index.html web/package.json \
           web/package-lock.json web/vite.config.ts web/tsconfig.json
WEB_OUT := src/ztos/web/static/index.html

web: $(WEB_OUT)

$(WEB_OUT): $(WEB_SRC)
	cd web && npm ci --no-audit --no-fund && npm run build

web-if-missing:
	@test -f $(WEB_OUT) || $(MAKE) web

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

# ZTOS_FORBID_SKIPS=1: a skipped test fails the run (CI has every component).
# pytest exits 5 when no test ran; make treats any non-zero exit as failure.
# Two workers, each taking whole files (module-scoped labs stay in one process):
# lab tests mostly wait on processes and the network, so two overlap well on two
# cores; every lab, namespace and socket is named per test, so they never collide.
TEST_WORKERS ?= 2
test: lint typecheck
	ZTOS_FORBID_SKIPS=1 $(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

unit: venv
	$(BIN)/pytest -q tests/unit tests/contract

demo: venv
	./scripts/demo.sh

# Benchmarks print figures as ratios against baselines measured in the same run.
# Not part of `make test`; the whole set takes about 20 minutes on 2 cores.
BENCHES := enroll_watch mesh tenants policy dns_bench api_load watch_cost enforcement

bench: venv
	@for b in $(BENCHES); do echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
