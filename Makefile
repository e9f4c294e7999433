PYTHON ?= python3
export PYTHON

.PHONY: setup demo test lint lab bench

setup:
	bash scripts/setup.sh

## The main job: train a sample skill, export, install, and chat with it through the
## runtime and the local DingTalk emulator, on embedded defaults.
demo: setup
	dingskill demo

## The whole test suite (what CI runs).
test: setup
	$(PYTHON) -m pytest

lint:
	ruff check sdk tests bench && ruff format --check sdk tests bench

lab: setup
	jupyter lab notebooks/

bench: setup
	dingskill bench clinc150 --data-home ../shared/datasets/clinc150 --json
	dingskill bench runtime --json
