# The two commands a newcomer needs: `make run` and `make test`. Everything else is plumbing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
STAMP  := $(VENV)/.installed

.PHONY: install run test lint bench cluster-demo screenshots clean

# `make run` installs what serving needs; `make test` and the tools add the dev toolchain.
install: $(STAMP)

$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME)

$(STAMP): pyproject.toml $(RUNTIME)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(RUNTIME)
	$(BIN)/billing db upgrade
	$(BIN)/billing demo --if-empty
	$(BIN)/billing serve --host 127.0.0.1 --port 8000

lint: install
	$(BIN)/ruff check billing tests benchmarks
	$(BIN)/ruff format --check billing tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/pricing.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/quota.py
	$(BIN)/python benchmarks/close.py
	$(BIN)/python benchmarks/scaling.py

# Three API replicas and two workers on PostgreSQL under load, with crashes; PASS/FAIL table.
cluster-demo: install
	$(BIN)/python benchmarks/cluster.py

# The docs' screenshots (docs/img/*.png), taken by the browser tests on the demo data.
screenshots: install
	BILLING_SCREENSHOTS=docs/img $(BIN)/python -m pytest -q -p no:cacheprovider tests/web/test_portal_browser.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
