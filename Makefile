# relion-qsub: developer and site targets. `make demo` and `make test` are the two commands a newcomer needs;
# both install what they need (Debian packages via apt-get when run as root, Python packages via pip).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TESTBED := testbed/testbed
PYTEST_ARGS ?=

.PHONY: all deps install site-install test test-fast lint format testbed-up testbed-down testbed-status testbed-logs demo bench clean

all: install

# Debian packages: Slurm, munge, PMIx, OpenMPI, RELION, Lmod, slurmdbd + MariaDB. Idempotent and quick when all are
# present.
deps:
	$(TESTBED) deps

# The development venv with an editable install and the dev tools (no root needed; `deps` comes with test/demo).
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@
	@# Bytecode now, so that a PYTHONDONTWRITEBYTECODE environment does not recompile the submit path on every run.
	$(BIN)/python -m compileall -q relion_qsub

# Site installation, the way an admin installs relion-qsub once for a cluster (README: "Site installation"):
#   make site-install PREFIX=/usr/local/apps MODULEDIR=/usr/local/modulefiles SITE=biowulf [FORCE=1]
# writes PREFIX/relion-qsub/<version>/ (bin/, the package, etc/<site>.toml, venv/ with the runtime dependencies only,
# share/man/), PREFIX/relion-qsub/templates/ (rendered from the site profile; the same path for every version, so
# RELION's Continue of an old job survives an upgrade) and MODULEDIR/relion-qsub/<version>.lua (Lmod) and
# MODULEDIR/relion-qsub/<version> (Environment Modules, Tcl). Nothing is written outside PREFIX and MODULEDIR, and
# nothing into the checkout: no development venv (it runs with $(PYTHON)). An installed version is replaced only
# with FORCE=1. `make install` (no PREFIX) stays the developer venv.
SITE ?= biowulf
PYTHON ?= python3
site-install:
	@test -n "$(PREFIX)" -a -n "$(MODULEDIR)" || { echo "usage: make site-install PREFIX=DIR MODULEDIR=DIR [SITE=name|profile.toml] [FORCE=1]" >&2; exit 64; }
	RELION_QSUB_PYTHON="$(PYTHON)" PYTHONDONTWRITEBYTECODE=1 bin/relion-qsub module install --site "$(SITE)" --prefix "$(PREFIX)" --moduledir "$(MODULEDIR)" $(if $(FORCE),--force)

testbed-up: deps
	$(TESTBED) up

testbed-down:
	$(TESTBED) down

testbed-status:
	$(TESTBED) status

testbed-logs:
	$(TESTBED) logs

# All tests, real cluster included: a real-cluster test that cannot reach the testbed fails instead of skipping.
# `make test` owns the testbed (it may restart it), so it also runs the test that restarts it (tests/test_testbed.py).
test: deps install testbed-up
	source <($(TESTBED) env) && RELION_QSUB_REQUIRE_SLURM=1 RELION_QSUB_TESTBED_OWNER=1 $(BIN)/pytest $(PYTEST_ARGS)

# Pure tests only (no cluster): quick feedback while editing.
test-fast: install
	$(BIN)/pytest -m 'not slurm' $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check relion_qsub tests benchmarks demo
	$(BIN)/ruff format --check relion_qsub tests benchmarks demo
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format relion_qsub tests benchmarks demo
	$(BIN)/ruff check --fix relion_qsub tests benchmarks demo

demo: deps install testbed-up
	source <($(TESTBED) env) && PATH="$(CURDIR)/bin:$$PATH" demo/run

bench: install testbed-up
	source <($(TESTBED) env) && $(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
