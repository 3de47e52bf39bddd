# Two commands for a fresh machine with Python >= 3.10:
#   make run    set up .venv, train the tutorial model on Fashion-MNIST, evaluate it, predict one test image
#   make test   set up .venv and run the whole test suite
#   make lint   ruff: lint and format check (CI runs it before the tests); make format fixes what it can
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_DIR ?= runs/quickstart
EPOCHS ?= 10

.PHONY: run test test-fast lint format bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("trainlab needs Python >= 3.10") if sys.version_info < (3, 10) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/trainlab train --epochs $(EPOCHS) --run-dir $(RUN_DIR) --overwrite
	$(BIN)/trainlab evaluate $(RUN_DIR)
	$(BIN)/trainlab predict $(RUN_DIR) --test-index 0

test: $(BIN)/.installed
	$(BIN)/python -m pytest

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -m "not slow"

# examples/: ruff reads the notebooks' code cells too
LINTED := src tests scripts benchmarks examples

lint: $(BIN)/.installed
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

format: $(BIN)/.installed
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) runs build src/*.egg-info .pytest_cache
