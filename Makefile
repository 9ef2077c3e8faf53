# marketlake: every target has a one-line help (`make help`).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
TEST_WORKERS ?= auto
# CONFIG=FILE (the settings file) and ARGS="..." (the command's own flags), each only when given on make's
# command line (`make train CONFIG=demo.toml ARGS="--iterations 5"`): a CONFIG or ARGS in the environment
# is someone else's. --config goes before the command, where every command takes it.
CONFIG_FLAG = $(if $(filter command line,$(origin CONFIG)),--config "$(CONFIG)")
ARGS_GIVEN = $(if $(filter command line,$(origin ARGS)),$(ARGS))

.DEFAULT_GOAL := help
.PHONY: help install ingest train demo shell check test unit integration lint bench clean

help: #-- list the targets with their one-line help
	@grep -E '^[a-z]+:.*#-- ' $(MAKEFILE_LIST) | sed -E 's/^([a-z]+):.*#-- (.*)/  make \1\t\2/' | expand -t 20

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) )torch==2.13.0
	@# compat: the checkout is on sys.path (a .pth file), so a regular package here wins over a data folder
	@# of the same name in the working folder (./lake); the default editable finder comes after that folder
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	@touch $(STAMP)

install: $(STAMP) #-- create .venv and install marketlake (editable) with its dev tools (TORCH_INDEX=URL: torch from that index)

ingest: $(STAMP) #-- pull every source the settings configure into the lake (CONFIG=FILE: its settings, else marketlake.toml; ARGS="...": e.g. "csv FILE --symbol X")
	$(BIN)/marketlake $(CONFIG_FLAG) ingest $(ARGS_GIVEN)

train: $(STAMP) #-- train PPO on the train period, evaluate on the unseen test period (CONFIG=FILE: its settings; ARGS="...": train's flags)
	$(BIN)/marketlake $(CONFIG_FLAG) train $(ARGS_GIVEN)

demo: $(STAMP) #-- run the whole chain offline on the real data the project ships (its own demo.toml: CONFIG is refused; ARGS="...": demo's flags)
	$(BIN)/marketlake $(CONFIG_FLAG) demo $(ARGS_GIVEN)

shell: $(STAMP) #-- open the DuckDB shell on the lake with every view ready (CONFIG=FILE: its settings file)
	$(BIN)/marketlake $(if $(filter command line,$(origin CONFIG)),--config "$(CONFIG)") shell

check: $(STAMP) #-- data-quality report per symbol (CONFIG=FILE: its settings; ARGS="...": check's flags)
	$(BIN)/marketlake $(CONFIG_FLAG) check $(ARGS_GIVEN)

lint: $(STAMP) #-- ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: $(STAMP) #-- fast tests, no servers
	$(BIN)/pytest -q -n $(TEST_WORKERS) tests/unit $(PYTEST_ARGS)

integration: $(STAMP) #-- tests against local servers and subprocesses
	$(BIN)/pytest -q -n $(TEST_WORKERS) tests/integration $(PYTEST_ARGS)

test: lint #-- install if needed, then lint and run every test (what CI runs)
	$(BIN)/pytest -q -n $(TEST_WORKERS) tests $(PYTEST_ARGS)

bench: $(STAMP) #-- benchmarks, reported as ratios against a reference run in the same process
	$(BIN)/python -m tests.bench

clean: #-- remove the virtual environment and caches (never the lake)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
