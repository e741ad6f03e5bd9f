# Passage: `make render` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
TF_EXTRA ?= cpu
CONFIG ?= configs/seed.toml
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# DASK=tcp://HOST:PORT or DASK=local:N runs capture, render and analyze on a Dask cluster.
DASK_FLAG := $(if $(DASK),--dask $(DASK))

.PHONY: install capture render analyze compare visualize serve test test-bare lint format bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -e '.[dev,$(TF_EXTRA)]'
	touch $(STAMP)

install: $(STAMP)

# Capture resumes from what the run's manifest holds, so a second `make capture` is quick.
capture: $(STAMP)
	$(BIN)/passage capture --config $(CONFIG) $(DASK_FLAG)

render: capture
	$(BIN)/passage render --config $(CONFIG) $(DASK_FLAG)

# Statistics, dead units, top patterns and CKA over every captured pattern: RUN/analysis/.
analyze: capture
	$(BIN)/passage analyze --config $(CONFIG) $(DASK_FLAG)

# The run's layers (at every epoch) against the neural data of [compare]: RUN/compare/NAME/.
# CONFIG=configs/compare.toml compares a training run with a synthetic reference.
compare: capture
	$(BIN)/passage compare --config $(CONFIG) $(DASK_FLAG)

# What each channel wants to see (feature visualization) and where in its top patterns (found
# by analyze) it looks (attribution): RUN/features/. Resumes where it stopped; CONFIG as above,
# e.g. CONFIG=configs/training.toml visualizes up to 4 of the trained model's epochs.
visualize: analyze
	$(BIN)/passage visualize --config $(CONFIG)

# The viewer on the default config's run: http://127.0.0.1:8000/ (Ctrl-C stops it).
serve: $(STAMP)
	$(BIN)/passage serve --config $(CONFIG)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The tests as on a machine without Graphviz and Chromium (hidden in a private mount namespace).
test-bare: $(STAMP)
	tests/without_programs.sh $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

clean:
	rm -rf runs .pytest_cache
