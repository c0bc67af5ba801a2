# backfill: `make demo` runs the main job on any machine with Python 3.11+; `make test` runs every test.
# The first Python 3.11+ on PATH, probed quietly (a pyenv shim for a version it lacks prints to stderr).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup test lint unit integration chaos demo screenshots flower metrics bench bench-quick clean constraints deploy-check

setup: $(VENV)/.installed

# constraints.txt pins every package to the versions the tests last passed with (reproducible installs);
# refresh it with `make constraints` after changing pyproject.toml's dependencies.
$(VENV)/.installed: pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "backfill needs Python 3.11 or later on PATH" >&2; exit 1; }
	@echo "backfill: setting up $(VENV) with $(PYTHON) ($$($(PYTHON) -c 'import sys; print(sys.version.split()[0])'))"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test,ops]"
	@touch $@

# Lint and types first, then the unit tests: a broken core fails in seconds, before minutes of real
# processes (make stops at the first command that fails). The last run's last line is the closing summary.
test: setup lint
	$(BIN)/pytest -q -m "not promtool" tests/unit
	$(BIN)/pytest -q -m "not promtool" --durations=15 tests/integration tests/chaos

# ruff (pyflakes, isort, bugbear, pyupgrade) and mypy, as configured in pyproject.toml.
lint: setup
	$(BIN)/ruff check worker producers tests bench
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -q -m "not promtool" tests/unit

integration: setup
	$(BIN)/pytest -q tests/integration

# The examples' reports, then the web console on the same Redis and workers: open the URL it prints, sign in
# with the key it prints (Ctrl-C stops everything). `backfill demo` alone (--no-console) exits after the reports.
demo: setup
	$(BIN)/backfill demo --console

# The README's console pictures (docs/console/*.png), taken by the browser test in a real headless Chromium;
# `make test` takes them too, into a temporary folder, and leaves the tree as it was.
screenshots: setup
	SCREENSHOTS_DIR=docs/console $(BIN)/pytest -q tests/integration/test_console.py

# Flower (the Celery dashboard) on http://localhost:5555, on the same Redis as `backfill worker`.
flower: setup
	$(BIN)/celery -A worker.app flower --port=5555

# The Prometheus endpoint on http://localhost:9808/metrics.
metrics: setup
	$(BIN)/backfill metrics --port 9808

# Every figure of the performance brief: 1M and 5M rows, floor, naive baseline, memory, and Redis bytes
# per dedupe mark at 1M and 50M marks, and the tracking endpoint's messages/s (about a quarter of an hour);
# the targets as ratios against the script a user would write (bench/reference.py), measured in the same run.
# `python bench/suite.py --quick` gives them on 200,000 rows in a few minutes.
bench: setup
	$(BIN)/python bench/suite.py
	$(BIN)/python bench/dedupe_memory.py
	$(BIN)/python bench/tracking.py

# End-to-end rows/s of 100,000 rows with 1 and 2 workers (under a minute).
bench-quick: setup
	$(BIN)/python bench/throughput.py

constraints: setup
	$(BIN)/pip freeze --exclude-editable > constraints.txt

# The alert rules compiled and unit-tested by promtool (Debian: apt-get install prometheus).
deploy-check: setup
	@command -v promtool >/dev/null || { echo "deploy-check needs promtool (Debian: apt-get install prometheus)" >&2; exit 1; }
	$(BIN)/pytest -q -m promtool tests/unit/test_deploy.py

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info

# The full reliability bar (kills, Redis crashes, duplicate deliveries, hostile files): a table (minutes).
chaos: setup
	$(BIN)/python -m tests.chaos.run
