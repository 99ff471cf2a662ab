# Everything a newcomer or CI needs, from a machine with nothing but Python 3.10+.
#   make demo     - a lead turns "won" in a real `airflow dags test` against the built-in fake server
#   make test     - the whole test suite on the newest supported Airflow
#   make matrix   - the whole test suite on every supported Airflow line, each in its own fresh venv
#   make lint     - ruff check, ruff format --check and mypy --strict: zero findings
#   make package  - build sdist + wheel, check them, smoke-test the wheel in a clean venv
#   make browser  - the Add Connection form in headless Chromium against a real Airflow API server
# `make help` lists the rest.

PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
VENV ?= .venv
EXTRAS ?= dev
# Extra requirements installed with Airflow, for a version whose unconstrained resolution would pull
# an incompatible dependency (no constraints file is reachable offline). Set per version below.
PINS ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-airflow-$(AIRFLOW_VERSION)-$(EXTRAS)
PYTEST_ARGS ?=

# The older Airflow lines of the matrix; the newest is AIRFLOW_VERSION in $(VENV) (`make test`).
# 2.11: the last Airflow 2 (Astronomer Runtime 2.x); 3.0: where the Task SDK and event triggers appeared.
MATRIX_VERSIONS ?= 2.11.2 3.0.6
# The interpreter of each older line, so the matrix covers the oldest supported Python (3.10, where
# common-compat stops at 1.20) and a newer one (3.12) besides $(PYTHON).
# Falls back to $(PYTHON), loudly, where that interpreter is not installed.
MATRIX_PYTHON_2.11.2 ?= python3.10
MATRIX_PYTHON_3.0.6 ?= python3.12
# Per-version pins (see PINS above); exact versions, each checked with a real `airflow dags test`.
# 2.11.2 resolves to a working set as it is.
PINS_2.11.2 ?=
# 3.0.6: its execution API breaks with the newest FastAPI/Cadwyn (`airflow dags test` of any DAG fails
# with "Remote server returned validation error ... Input should be a valid dictionary" when a task
# starts; seen with fastapi 0.128.8, 0.136.3 and 0.165.0). Pinned: the newest Cadwyn 5 and the newest
# FastAPI it accepts, a pair that runs the whole suite.
PINS_3.0.6 ?= fastapi==0.119.1 cadwyn==5.6.0

PKG_VENV ?= .venv-pkg
DIST ?= dist

.PHONY: help venv test demo matrix matrix-older matrix-one lint format package browser bench bench-smoke clean e2e-postgres

help:
	@echo "make demo          - run the lead-won demo (sets up $(VENV) first)"
	@echo "make test          - run the whole test suite (sets up $(VENV) first)"
	@echo "make matrix        - the suite on Airflow $(AIRFLOW_VERSION) ($(VENV)) and $(MATRIX_VERSIONS) (fresh .venv-X.Y)"
	@echo "make matrix-older  - only the older lines: $(MATRIX_VERSIONS)"
	@echo "make matrix-one V=2.11.2 - one older line, in a fresh venv"
	@echo "make lint          - ruff check, ruff format --check, mypy --strict"
	@echo "make format        - apply ruff format and ruff's safe fixes"
	@echo "make package       - build, twine check, inspect the wheel, smoke-test it in $(PKG_VENV)"
	@echo "make browser       - the connection form in headless Chromium (needs /usr/bin/chromium)"
	@echo "make e2e-postgres  - event-driven scenarios on Postgres with two triggerers (needs postgresql)"
	@echo "make bench         - every benchmark at full size, one markdown table (~4 min)"
	@echo "make bench-smoke   - the benchmarks at tiny sizes (CI): fails only if one crashes"
	@echo "PYTEST_ARGS='-k name' narrows any pytest run, e.g. make test PYTEST_ARGS='tests/hooks -k retry'"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "apache-airflow==$(AIRFLOW_VERSION)" $(PINS) -e ".[$(EXTRAS)]"
	@rm -f $(VENV)/.installed-airflow-*
	@touch $@

venv: $(STAMP)

test: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) demo/run_demo.py

# --- compatibility matrix ------------------------------------------------------------------------
matrix: test matrix-older

# Every older line runs even if an earlier one failed, so one CI run reports all of them.
matrix-older:
	@failed=""; for v in $(MATRIX_VERSIONS); do \
		$(MAKE) --no-print-directory matrix-one V=$$v || failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "== matrix FAILED on Airflow:$$failed"; exit 1; fi; \
	echo "== matrix passed on Airflow: $(MATRIX_VERSIONS)"

# One older line in a venv created from nothing (.venv-2.11 for 2.11.2), timed: install, then tests.
MVENV = .venv-$(word 1,$(subst ., ,$(V))).$(word 2,$(subst ., ,$(V)))
matrix-one:
	@test -n "$(V)" || { echo "usage: make matrix-one V=<airflow version>"; exit 2; }
	@py="$(MATRIX_PYTHON_$(V))"; py="$${py:-$(PYTHON)}"; \
	if ! "$$py" -c "" 2>/dev/null; then \
		echo "== WARNING: $$py is not installed; Airflow $(V) runs on $(PYTHON) instead"; py="$(PYTHON)"; \
	fi; \
	echo "== Airflow $(V) on $$("$$py" -c 'import platform; print("Python", platform.python_version())') in $(MVENV)"; \
	rm -rf $(MVENV); \
	start=$$(date +%s); \
	$(MAKE) --no-print-directory venv PYTHON="$$py" AIRFLOW_VERSION=$(V) VENV=$(MVENV) EXTRAS=test \
		PINS='$(PINS_$(V))' || exit 1; \
	installed=$$(date +%s); \
	$(MAKE) --no-print-directory test AIRFLOW_VERSION=$(V) VENV=$(MVENV) EXTRAS=test \
		PYTEST_ARGS='$(PYTEST_ARGS)'; rc=$$?; \
	done_at=$$(date +%s); \
	echo "== Airflow $(V): install $$((installed - start)) s, tests $$((done_at - installed)) s, exit $$rc"; \
	exit $$rc

# --- quality gates -------------------------------------------------------------------------------
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# --- packaging -----------------------------------------------------------------------------------
# The wheel is installed, not the source tree: the smoke test runs outside the repository so the
# import cannot pick up ./airflow_provider_octanist.
package: $(STAMP)
	rm -rf $(DIST) $(PKG_VENV)
	$(PY) -m build --outdir $(DIST) .
	$(PY) -m twine check --strict $(DIST)/*
	$(PY) .ci/check_dist.py $(DIST)
	$(PYTHON) -m venv $(PKG_VENV)
	$(PKG_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PKG_VENV)/bin/python -m pip install --quiet "apache-airflow==$(AIRFLOW_VERSION)" $(DIST)/*.whl
	PATH="$(CURDIR)/$(PKG_VENV)/bin:$$PATH" $(PKG_VENV)/bin/python .ci/smoke_wheel.py

# --- the connection form in a real browser -------------------------------------------------------
# OCTANIST_REQUIRE_BROWSER turns "chromium/playwright missing" from a skip into a failure here; the
# run refreshes the README's screenshots in docs/.
browser: $(STAMP)
	$(PY) -m pip install --quiet -e ".[browser]"
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" OCTANIST_REQUIRE_BROWSER=1 OCTANIST_SCREENSHOT_DIR="$(CURDIR)/docs" \
		$(PY) -m pytest -m browser tests/browser $(PYTEST_ARGS)

# --- event-driven scheduling on Postgres with two triggerers ------------------------------------
# Needs Debian's postgresql (server binaries under /usr/lib/postgresql/<major>/bin); Airflow needs
# psycopg2 (sync engine) and asyncpg (async engine) to run on Postgres. OCTANIST_REQUIRE_POSTGRES turns
# "Postgres missing" from a skip into a failure.
e2e-postgres: $(STAMP)
	$(PY) -m pip install --quiet psycopg2-binary asyncpg
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" OCTANIST_REQUIRE_POSTGRES=1 \
		$(PY) -m pytest tests/system/test_event_driven_postgres.py $(PYTEST_ARGS)

# --- benchmarks ----------------------------------------------------------------------------------
# Both install the `bench` extra first: the HTTP provider, the peer the benchmarks compare with.
BENCH_STAMP := $(VENV)/.installed-bench-$(AIRFLOW_VERSION)
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	@touch $@

bench: $(BENCH_STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/run.py

bench-smoke: $(BENCH_STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/run.py --smoke

clean:
	rm -rf $(VENV) .venv-* build dist .pytest_cache .mypy_cache .ruff_cache
