# Set-up and entry points. `make study` and `make test` create (or reuse) the
# virtual environment .venv themselves; nothing else needs to be installed first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= ci
STAMP := $(VENV)/.rharm-installed

.PHONY: env study test lint format clean-env

env: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# constraints.txt pins torch==2.13.0 (the local CPU wheel); see README "Set-up".
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

study: $(STAMP)
	$(BIN)/rharm study --profile $(PROFILE)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

lint: $(STAMP)
	$(BIN)/ruff check rharm_lib tests
	$(BIN)/ruff format --check rharm_lib tests

format: $(STAMP)
	$(BIN)/ruff format rharm_lib tests
	$(BIN)/ruff check --fix rharm_lib tests

clean-env:
	rm -rf $(VENV)
