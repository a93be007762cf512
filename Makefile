# Set-up and entry points. `make study` and `make test` create (or reuse) the
# virtual environment .venv themselves; nothing else needs to be installed first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= ci
STAMP := $(VENV)/.rharm-installed
# JupyterLab settings of the project, installed into the environment (never ~/.jupyter):
# notebooks/*.py open as notebooks on double-click (jupytext's "Jupytext Notebook" viewer).
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.d/rharm.json
LAB_ARGS ?=

.PHONY: env study check-study test lint format clean-env lab lab-settings

env: $(STAMP) $(LAB_SETTINGS)

lab-settings: $(LAB_SETTINGS)

$(LAB_SETTINGS): jupyter-settings/overrides.json
	mkdir -p $(dir $@)
	cp $< $@

# JupyterLab on the repository (http://localhost:8888, the token is printed); open
# notebooks/ and double-click a notebook. LAB_ARGS passes options (e.g. --allow-root).
lab: $(STAMP) $(LAB_SETTINGS)
	$(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) $(LAB_ARGS)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# constraints.txt pins torch==2.13.0 (the local CPU wheel); see README "Set-up".
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

study: $(STAMP)
	$(BIN)/rharm study --profile $(PROFILE) $(STUDY_FLAGS)

# the study, regenerated and compared with the committed tables (exit 1 on a drift)
check-study: $(STAMP)
	$(BIN)/rharm study --profile $(PROFILE) --check --fresh-runs

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
