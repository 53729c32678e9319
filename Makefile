# The two commands: `make demo` and `make test`. Both create .venv on a fresh machine (Python >= 3.11
# and make are all they need) and are quick when .venv is already there.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint typecheck layers unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Stamps make the installs idempotent: they rerun only when pyproject.toml changes.
$(VENV)/.base-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[test]'
	@touch $@ $(VENV)/.base-installed

# The main job: onboard 10,000 things into 20 groups, one Greengrass deployment per group, and
# verify every group, against the embedded emulator. The emulator does not throttle, so the
# client-side rates of the two 100 TPS operations are lifted to let the demo take seconds.
demo: $(VENV)/.base-installed
	$(BIN)/harness run examples/fleet-onboarding.yaml \
		--summary .harness/demo-summary.json \
		--rate CreateThing=5000 --rate AddThingToThingGroup=5000

lint: $(VENV)/.test-installed
	$(BIN)/ruff check harness tests fuzz perf
	$(BIN)/ruff format --check harness tests fuzz perf

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy

layers: $(VENV)/.test-installed
	$(BIN)/lint-imports

unit: $(VENV)/.test-installed
	$(BIN)/pytest -q -n 3 --dist loadfile
	$(BIN)/pytest -q perf --benchmark-disable
	HYPOTHESIS_PROFILE=ci $(BIN)/pytest -q fuzz

test: lint typecheck layers unit

bench: $(VENV)/.test-installed
	$(BIN)/pytest perf -q
	$(BIN)/python perf/emulator_vs_moto.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .benchmarks
