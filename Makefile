# Everything a newcomer or CI needs, from a machine with nothing but Python 3.10+.
#   make demo         - a lead turns "won" in a real `airflow dags test` against the built-in fake server
#   make test         - the whole test suite on the newest supported Airflow
#   make matrix       - the whole test suite on every supported Airflow line, each in its own fresh venv
#   make lint         - ruff check, ruff format --check and mypy --strict: zero findings
#   make docs         - the documentation site into site/, warnings are errors
#   make package      - build sdist + wheel, check them, smoke-test the wheel in a clean venv
#   make browser      - the Add Connection form in headless Chromium against a real Airflow API server
#   make constraints  - re-resolve every Airflow line from scratch and rewrite constraints/
# `make help` lists the rest.
#
# Every install uses the constraints file of its Airflow line (constraints/airflow-<version>-py<X.Y>.txt),
# so a machine and CI get the versions the suite last passed with. Development tools are PEP 735
# dependency groups of pyproject.toml (`pip install --group`), never extras of the published package.

PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
VENV ?= .venv
# The dependency group(s) of pyproject.toml the venv gets besides the project itself.
GROUPS ?= dev
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
empty :=
space := $(empty) $(empty)
STAMP := $(VENV)/.installed-airflow-$(AIRFLOW_VERSION)-$(subst $(space),-,$(strip $(GROUPS)))
# One constraints file per Airflow line, named for the Python it was resolved on; pip applies it on the
# other supported Pythons too (it only pins versions). It never names this project itself.
constraints_of = $(firstword $(wildcard constraints/airflow-$(1)-py*.txt))
CONSTRAINTS ?= $(call constraints_of,$(AIRFLOW_VERSION))
PIP_INSTALL = $(PY) -m pip install --quiet -c "$(CONSTRAINTS)"

# The older Airflow lines of the matrix; the newest is AIRFLOW_VERSION in $(VENV) (`make test`).
# 2.11: the last Airflow 2 (Astronomer Runtime 2.x); 3.0: where the Task SDK and event triggers appeared;
# 3.1 and 3.2: the lines between.
MATRIX_VERSIONS ?= 2.11.2 3.0.6 3.1.8 3.2.2
# The interpreter of each line, so the matrix covers the oldest supported Python (3.10, where
# common-compat stops at 1.20) and a newer one (3.12) besides $(PYTHON) (3.11 on CI, the newest line).
# Falls back to $(PYTHON), loudly, where that interpreter is not installed.
MATRIX_PYTHON_2.11.2 ?= python3.10
MATRIX_PYTHON_3.0.6 ?= python3.12
MATRIX_PYTHON_3.1.8 ?= python3.12
# 3.2.2 on the newest Python the project supports.
MATRIX_PYTHON_3.2.2 ?= python3.13
MATRIX_PYTHON_$(AIRFLOW_VERSION) ?= $(PYTHON)
# Extra requirements for a line whose unconstrained resolution pulls an incompatible dependency. Only
# `make constraints` reads them (every other install takes the line's constraints file, which holds
# them); exact versions, each checked with the whole suite.
# 3.0.6: its execution API breaks with the newest FastAPI/Cadwyn (`airflow dags test` of any DAG fails
# with "Remote server returned validation error ... Input should be a valid dictionary" when a task
# starts; seen with fastapi 0.128.8, 0.136.3 and 0.165.0). Pinned: the newest Cadwyn 5 and the newest
# FastAPI it accepts, a pair that runs the whole suite.
# universal-pathlib 0.3 changed the API that Airflow 3.0's ObjectStoragePath builds on (the export
# operators fail there with it); Airflow's own constraints for 3.0 hold it below 0.3 too.
PINS_3.0.6 ?= fastapi==0.119.1 cadwyn==5.6.0 universal-pathlib==0.2.6
# 3.2.2: with the newest FastAPI/Cadwyn a task fails to start ("Model 'TITerminalStatePayload' needs a
# discriminator field"); with FastAPI 0.136.3 / Cadwyn 7.0.0 (the pair Airflow 3.3.2 accepts), svcs 26
# breaks the in-process execution API of `airflow dags test` (KeyError 'svcs_registry' on the first
# request of a task); svcs 25.1.0, the release before, runs it.
PINS_3.2.2 ?= fastapi==0.136.3 cadwyn==7.0.0 svcs==25.1.0
# The groups each line's constraints file covers: the newest line runs every tool, the others the suite.
CONSTRAINT_GROUPS_$(AIRFLOW_VERSION) ?= dev docs browser bench postgres
CONSTRAINT_GROUPS ?= test

PKG_VENV ?= .venv-pkg
DIST ?= dist
SITE ?= site

.PHONY: help venv test model-check demo matrix matrix-older matrix-one constraints constraints-one lint format docs \
	package release-check browser e2e-postgres bench bench-smoke clean

help:
	@echo "make demo          - run the lead-won demo (sets up $(VENV) first)"
	@echo "make test          - run the whole test suite (sets up $(VENV) first)"
	@echo "make model-check   - the change feed against a model of the service, $(MODEL_EXAMPLES) random examples (MODEL_EXAMPLES=n, OCTANIST_MODEL_SEED=s)"
	@echo "make matrix        - the suite on Airflow $(AIRFLOW_VERSION) ($(VENV)) and $(MATRIX_VERSIONS) (fresh .venv-X.Y)"
	@echo "make matrix-older  - only the older lines: $(MATRIX_VERSIONS)"
	@echo "make matrix-one V=2.11.2 - one older line, in a fresh venv"
	@echo "make constraints   - re-resolve every line without constraints and rewrite constraints/"
	@echo "make constraints-one V=3.1.8 - the same for one line (then: make matrix-one V=3.1.8)"
	@echo "make lint          - ruff check, ruff format --check, mypy --strict"
	@echo "make format        - apply ruff format and ruff's safe fixes"
	@echo "make docs          - build the documentation site into $(SITE)/ (mkdocs build --strict)"
	@echo "make package       - build, twine check, inspect the wheel, smoke-test it in $(PKG_VENV)"
	@echo "make release-check [TAG=v0.2.0] - the version has a CHANGELOG entry (with a tag: dated, equal to the tag, nothing Unreleased)"
	@echo "make browser       - the connection form in headless Chromium (needs /usr/bin/chromium)"
	@echo "make e2e-postgres  - event-driven scenarios on Postgres, CeleryExecutor, two triggerers (needs postgresql, redis-server)"
	@echo "make bench         - every benchmark at full size, one markdown table (~4 min)"
	@echo "make bench-smoke   - the benchmarks at tiny sizes (CI): fails only if one crashes"
	@echo "PYTEST_ARGS='-k name' narrows any pytest run, e.g. make test PYTEST_ARGS='tests/hooks -k retry'"

# pip >= 25.1 installs dependency groups; the venv's pip is upgraded first.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -n "$(CONSTRAINTS)" || { echo "no constraints/airflow-$(AIRFLOW_VERSION)-py*.txt: run make constraints-one V=$(AIRFLOW_VERSION)"; exit 2; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) "apache-airflow==$(AIRFLOW_VERSION)" -e . $(addprefix --group ,$(GROUPS))
	@rm -f $(VENV)/.installed-airflow-*
	@touch $@

venv: $(STAMP)

# OCTANIST_REQUIRE_S3 turns "the s3 group is missing" from a skip into a failure where the venv has it
# (the dev group includes it); the older matrix lines (GROUPS=test) skip the S3 tests, saying why.
REQUIRE_S3 := $(if $(filter dev s3,$(GROUPS)),OCTANIST_REQUIRE_S3=1)
test: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(REQUIRE_S3) $(PY) -m pytest $(PYTEST_ARGS)

# The change feed and the export against a model of the service (tests/triggers/_feed/test_feed_model.py)
# with many random examples; `make test` runs the same machines on a small fixed, derandomized budget.
# The seed is printed first: OCTANIST_MODEL_SEED=<seed> replays a run.
MODEL_EXAMPLES ?= 2000
model-check: $(STAMP)
	@seed=$${OCTANIST_MODEL_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	echo "== model check: $(MODEL_EXAMPLES) examples per machine, OCTANIST_MODEL_SEED=$$seed"; \
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" OCTANIST_MODEL_EXAMPLES=$(MODEL_EXAMPLES) OCTANIST_MODEL_SEED=$$seed \
		$(PY) -m pytest tests/triggers/_feed/test_feed_model.py -p no:cacheprovider $(PYTEST_ARGS)

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

# The interpreter of line $(V): its MATRIX_PYTHON, or $(PYTHON) with a warning where that is missing.
MVENV = .venv-$(word 1,$(subst ., ,$(V))).$(word 2,$(subst ., ,$(V)))
define pick_python
py="$(MATRIX_PYTHON_$(V))"; py="$${py:-$(PYTHON)}"; \
if ! "$$py" -c "" 2>/dev/null; then \
	echo "== WARNING: $$py is not installed; Airflow $(V) runs on $(PYTHON) instead"; py="$(PYTHON)"; \
fi
endef

# One older line in a venv created from nothing (.venv-2.11 for 2.11.2), timed: install, then tests.
matrix-one:
	@test -n "$(V)" || { echo "usage: make matrix-one V=<airflow version>"; exit 2; }
	@$(pick_python); \
	echo "== Airflow $(V) on $$("$$py" -c 'import platform; print("Python", platform.python_version())') in $(MVENV)"; \
	rm -rf $(MVENV); \
	start=$$(date +%s); \
	$(MAKE) --no-print-directory venv PYTHON="$$py" AIRFLOW_VERSION=$(V) VENV=$(MVENV) GROUPS=test || exit 1; \
	installed=$$(date +%s); \
	$(MAKE) --no-print-directory test AIRFLOW_VERSION=$(V) VENV=$(MVENV) GROUPS=test \
		PYTEST_ARGS='$(PYTEST_ARGS)'; rc=$$?; \
	done_at=$$(date +%s); \
	echo "== Airflow $(V): install $$((installed - start)) s, tests $$((done_at - installed)) s, exit $$rc"; \
	exit $$rc

# --- constraints ---------------------------------------------------------------------------------
# Re-resolve line $(V) from nothing, without constraints (only its PINS), in a fresh $(MVENV), and
# freeze the result, minus this project, into constraints/airflow-$(V)-py<X.Y>.txt. The venv is left
# stamped, so `make test AIRFLOW_VERSION=$(V) VENV=$(MVENV) GROUPS=test` runs the suite on exactly
# what was frozen; `make matrix` (and CI) then prove the files from fresh venvs. Commit a file only
# after the suite passed on it.
constraints:
	@for v in $(MATRIX_VERSIONS) $(AIRFLOW_VERSION); do \
		$(MAKE) --no-print-directory constraints-one V=$$v || exit 1; \
	done

constraints-one:
	@test -n "$(V)" || { echo "usage: make constraints-one V=<airflow version>"; exit 2; }
	@$(pick_python); \
	groups="$(or $(CONSTRAINT_GROUPS_$(V)),$(CONSTRAINT_GROUPS))"; \
	rm -rf $(MVENV) && "$$py" -m venv $(MVENV) && \
	$(MVENV)/bin/python -m pip install --quiet --upgrade pip && \
	$(MVENV)/bin/python -m pip install --quiet "apache-airflow==$(V)" $(PINS_$(V)) -e . \
		$$(for g in $$groups; do printf -- '--group %s ' "$$g"; done) || exit 1; \
	pyver=$$($(MVENV)/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	rm -f constraints/airflow-$(V)-py*.txt; mkdir -p constraints; \
	out=constraints/airflow-$(V)-py$$pyver.txt; \
	{ echo "# Airflow $(V) on Python $$pyver: the versions the test suite passed with."; \
	  echo "# Written by \`make constraints-one V=$(V)\` (groups: $$groups; pins: $(or $(PINS_$(V)),none))."; \
	  echo "# Install with: pip install -c $$out \"apache-airflow==$(V)\" -e . --group test"; \
	  $(MVENV)/bin/python -m pip freeze --exclude-editable --exclude airflow-provider-octanist; } > $$out; \
	for g in $$groups; do touch "$(MVENV)/.installed-airflow-$(V)-$$g"; done; \
	echo "== wrote $$out ($$(grep -vc '^#' $$out) pins)"

# --- quality gates -------------------------------------------------------------------------------
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# --- documentation -------------------------------------------------------------------------------
# mkdocstrings reads the docstrings statically (griffe): nothing is imported, so the build is quick and
# needs no Airflow, but it shares $(VENV) and its constraints so the versions are the tested ones.
DOCS_STAMP := $(VENV)/.installed-docs-$(AIRFLOW_VERSION)
$(DOCS_STAMP): $(STAMP)
	$(PIP_INSTALL) --group docs
	@touch $@

docs: $(DOCS_STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir $(SITE)

# --- packaging and releasing ---------------------------------------------------------------------
# The wheel is installed, not the source tree: the smoke test runs outside the repository so the
# import cannot pick up ./airflow_provider_octanist.
package: $(STAMP)
	rm -rf $(DIST) $(PKG_VENV)
	$(PY) -m build --outdir $(DIST) .
	$(PY) -m twine check --strict $(DIST)/*
	$(PY) .ci/check_dist.py $(DIST)
	$(PYTHON) -m venv $(PKG_VENV)
	$(PKG_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PKG_VENV)/bin/python -m pip install --quiet -c "$(CONSTRAINTS)" "apache-airflow==$(AIRFLOW_VERSION)" $(DIST)/*.whl
	PATH="$(CURDIR)/$(PKG_VENV)/bin:$$PATH" $(PKG_VENV)/bin/python .ci/smoke_wheel.py

# The version in airflow_provider_octanist/__init__.py has a `## <version>` entry in CHANGELOG.md and,
# with TAG=v<version> (what the release workflow passes), equals the tag, the entry is dated and
# `## Unreleased` holds no entries. Needs only Python.
TAG ?=
release-check:
	$(PYTHON) .ci/check_release.py $(if $(TAG),--tag $(TAG))

# --- the connection form in a real browser -------------------------------------------------------
# OCTANIST_REQUIRE_BROWSER turns "chromium/playwright missing" from a skip into a failure here; the
# run refreshes the README's screenshots in docs/.
BROWSER_STAMP := $(VENV)/.installed-browser-$(AIRFLOW_VERSION)
$(BROWSER_STAMP): $(STAMP)
	$(PIP_INSTALL) --group browser
	@touch $@

browser: $(BROWSER_STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" OCTANIST_REQUIRE_BROWSER=1 OCTANIST_SCREENSHOT_DIR="$(CURDIR)/docs" \
		$(PY) -m pytest -m browser tests/browser $(PYTEST_ARGS)

# --- event-driven scheduling on Postgres and CeleryExecutor with two triggerers ----------------
# Needs Debian's postgresql (server binaries under /usr/lib/postgresql/<major>/bin) and redis-server
# (the Celery broker); the `postgres` group brings psycopg2 and asyncpg (Airflow's sync and async
# engines on Postgres), the Celery provider and the Redis client. OCTANIST_REQUIRE_POSTGRES turns
# "Postgres or Redis missing" from a skip into a failure.
POSTGRES_STAMP := $(VENV)/.installed-postgres-$(AIRFLOW_VERSION)
$(POSTGRES_STAMP): $(STAMP)
	$(PIP_INSTALL) --group postgres
	@touch $@

e2e-postgres: $(POSTGRES_STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" OCTANIST_REQUIRE_POSTGRES=1 \
		$(PY) -m pytest tests/system/test_event_driven_postgres.py $(PYTEST_ARGS)

# --- benchmarks ----------------------------------------------------------------------------------
# Both install the `bench` group first: the HTTP provider, the peer the benchmarks compare with.
BENCH_STAMP := $(VENV)/.installed-bench-$(AIRFLOW_VERSION)
$(BENCH_STAMP): $(STAMP)
	$(PIP_INSTALL) --group bench
	@touch $@

bench: $(BENCH_STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/run.py

bench-smoke: $(BENCH_STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/run.py --smoke

clean:
	rm -rf $(VENV) .venv-* build dist $(SITE) .pytest_cache .mypy_cache .ruff_cache
