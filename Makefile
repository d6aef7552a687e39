# Two commands: `make run` (gateway + example agents) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck pytest proto clean bench bench-quick

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m examples.run

lint: install
	$(VENV)/bin/ruff check gateway adapters examples tests scripts bench
	$(VENV)/bin/ruff format --check gateway adapters bench

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	$(PY) -m pytest

test: lint typecheck pytest

# The benchmark suite (bench/README.md): a few minutes on 2 cores; wrk, h2load and
# nginx are installed with apt-get when missing and allowed (skipped otherwise).
bench: install
	$(PY) -m bench.tools
	$(PY) -m bench

bench-quick: install
	$(PY) -m bench --quick

proto: install
	$(PY) scripts/gen_proto.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
