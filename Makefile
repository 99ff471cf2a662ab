# Everything a newcomer or CI needs, from a machine with nothing but Python 3.10+.
#   make demo   - a lead turns "won" in a real `airflow dags test` against the built-in fake server
#   make test   - the whole test suite on the newest supported Airflow

PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-airflow-$(AIRFLOW_VERSION)
PYTEST_ARGS ?=

.PHONY: help venv test demo clean

help:
	@echo "make demo   - run the lead-won demo (sets up $(VENV) first)"
	@echo "make test   - run the whole test suite (sets up $(VENV) first)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "apache-airflow==$(AIRFLOW_VERSION)" -e ".[dev]"
	@rm -f $(VENV)/.installed-airflow-*
	@touch $@

venv: $(STAMP)

test: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) demo/run_demo.py

clean:
	rm -rf $(VENV) .venv-* build dist .pytest_cache .mypy_cache .ruff_cache
