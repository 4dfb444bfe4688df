# Two commands on a fresh machine:  `make lab` (set up and open the labs), `make test`.
# Every target is idempotent: the venv is built once and rebuilt only when pyproject.toml changes.
#   make lab      students: labkit + JupyterLab, no instructor extensions
#   make test     developers and instructors: everything (tests, nbgrader, playwright)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAB_STAMP := $(VENV)/.installed-lab
# JupyterLab as students see it: nbgrader's instructor extensions (its menu, Create Assignment, Formgrader)
# stay off even in a venv where `make test` installed nbgrader.
STUDENT_JUPYTER := JUPYTER_CONFIG_PATH=$(CURDIR)/binder/student
# Rooted at the repository, so that labkit/ (the exercise files) opens from the notebooks' links and the
# file browser; opening on notebooks/. Binder's urlpath (README) and environment.yml start it the same way.
# JUPYTER_ARGS: more options (tests/test_browser.py adds a port and no token).
LAB_ARGS := --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks
JUPYTER_ARGS ?=

.PHONY: install lab test test-fast lint run figures sync bench bench-quick clean

install: $(STAMP)

$(LAB_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[lab]"
	touch $(LAB_STAMP)

$(STAMP): pyproject.toml $(LAB_STAMP)
	$(BIN)/python -m pip install -e ".[dev]"
	# torchattacks (tests only) pins requests~=2.25.1, which drags the Jupyter stack back years: install it alone.
	$(BIN)/python -m pip install --no-deps "torchattacks>=3.4"
	touch $(STAMP)

lab: $(LAB_STAMP)     ## open JupyterLab on the student notebooks
	$(STUDENT_JUPYTER) $(BIN)/jupyter lab $(LAB_ARGS) $(JUPYTER_ARGS)

test: install         ## the full test suite, offline (what CI runs)
	LABKIT_OFFLINE=1 $(BIN)/python -m pytest

test-fast: install    ## the tests that start no kernel, sandbox or browser (-m "not slow")
	LABKIT_OFFLINE=1 $(BIN)/python -m pytest -m "not slow"

lint: install         ## ruff: lint and format check (CI runs it)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

run: install          ## execute every solved notebook headless, offline, into build/run/; then the README figures
	LABKIT_OFFLINE=1 $(BIN)/labkit-course run
	$(BIN)/python -m labkit_course.figures build/run

figures: install      ## the README figures (docs/figures/) from the executed notebooks in build/run/
	$(BIN)/python -m labkit_course.figures build/run

sync: install         ## regenerate the student files from solutions/
	$(BIN)/labkit-course sync

bench: install        ## measure every budget; writes benchmarks/RESULTS.md
	LABKIT_OFFLINE=1 $(BIN)/python -m benchmarks.run

bench-quick: install
	LABKIT_OFFLINE=1 $(BIN)/python -m benchmarks.run --quick

clean:
	rm -rf $(VENV) build .pytest_cache
