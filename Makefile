PYTHON ?= python3
export PYTHON
# The interpreter everything runs with: the active virtual/conda environment, else the
# project's own .venv that `make setup` creates (see scripts/python.sh).
PY := $(shell PYTHON=$(PYTHON) bash scripts/python.sh)
export PATH := $(dir $(PY)):$(PATH)

.PHONY: setup setup-demo demo test test-fast lint lab bench doctor

## Everything the tests need (system packages, the package with its dev extras). A run whose
## environment is already current skips pip (scripts/setup.sh keeps a stamp).
setup:
	bash scripts/setup.sh full

## Only what the demo needs: the package, no browser, broker or HSM.
setup-demo:
	bash scripts/setup.sh demo

## The main job: train a sample skill, export, install, and chat with it through the
## runtime and the local DingTalk emulator, on embedded defaults.
demo: setup-demo
	$(PY) -m dingskill.cli.main demo

## The suite's files run side by side, one worker a logical CPU (at most four; pytest-xdist,
## a file's tests stay together in one worker). TEST_WORKERS=0 runs them one after another.
TEST_WORKERS ?= logical
XDIST := -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile

## The whole test suite (what CI runs).
test: setup
	$(PY) -m pytest $(XDIST)

## The edit loop: everything but the slow and browser tests.
test-fast: setup
	$(PY) -m pytest $(XDIST) -m "not slow and not browser"

doctor: setup-demo
	$(PY) -m dingskill.cli.main doctor

lint:
	$(PY) -m ruff check sdk tests bench && $(PY) -m ruff format --check sdk tests bench

lab: setup
	$(PY) -m jupyter lab notebooks/

bench: setup
	$(PY) -m dingskill.cli.main bench clinc150 --data-home ../shared/datasets/clinc150 --json
	$(PY) -m dingskill.cli.main bench runtime --json
