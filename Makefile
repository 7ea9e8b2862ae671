# Two entry points that do all set-up themselves on a fresh machine:
#   make reproduce   the main job (theory tables + figures; later the CPU-scale grid)
#   make test        the test suite
# Both create .venv and install the project into it when missing, and reuse it when present.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The data root for tests and the main job: ../shared/data beside the checkout, unless set.
export ADVFEAT_DATA ?= $(abspath ../shared/data)

.PHONY: reproduce test test-slow venv clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

test-slow: $(STAMP)
	$(PY) -m pytest -q --runslow tests

reproduce: $(STAMP)
	$(PY) -m theory all
	$(PY) -m figures theory
	@echo "Figures written to figures/out/"

clean:
	rm -rf $(VENV) figures/out
