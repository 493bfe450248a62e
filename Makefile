# Two entry points for a fresh clone (Python 3.11, g++, make, perl; nothing else):
#   make report   set up .venv, then generate, verify and cost every unit -> build/reports/
#   make test     set up .venv, then run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
JOBS   ?= 2

.PHONY: setup report test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

report: setup
	$(BIN)/qrtl report -j $(JOBS)

test: setup
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup

clean:
	rm -rf build
