# Two entry points, each doing its own set-up in ./.venv:
#   make demo   core install (no torch), then classify the committed demo data
#   make test   full install (torch, open_clip, pytorch-metric-learning), then the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.full: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	touch $@ $(VENV)/.core

demo: $(VENV)/.core
	$(BIN)/pairclass classify data/demo.parquet --classes data/demo_classes.parquet \
		--views product_name,description --label-col category --out demo_predictions.parquet

test: $(VENV)/.full
	$(BIN)/python -m pytest -q
