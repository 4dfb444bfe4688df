# Two commands on a fresh machine:  `make lab` (set up and open the labs), `make test`.
# Every target is idempotent: the venv is built once and rebuilt only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lab test run sync bench bench-quick clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[dev]"
	# torchattacks pins requests~=2.25.1, which drags the Jupyter stack back years: install it alone.
	$(BIN)/python -m pip install --no-deps "torchattacks>=3.4"
	touch $(STAMP)

lab: install          ## open JupyterLab on the student notebooks
	$(BIN)/jupyter lab notebooks/

test: install         ## the full test suite, offline (what CI runs)
	LABKIT_OFFLINE=1 $(BIN)/python -m pytest

run: install          ## execute every solved notebook headless, offline, into build/run/
	LABKIT_OFFLINE=1 $(BIN)/labkit run

sync: install         ## regenerate the student files from solutions/
	$(BIN)/labkit sync

bench: install        ## measure every budget; writes benchmarks/RESULTS.md
	LABKIT_OFFLINE=1 $(BIN)/python -m benchmarks.run

bench-quick: install
	LABKIT_OFFLINE=1 $(BIN)/python -m benchmarks.run --quick

clean:
	rm -rf $(VENV) build .pytest_cache
