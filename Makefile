# Ferry: two commands for a newcomer - `make run` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SAMPLES := sample_repos/primary/.built
HISTORY := sample_repos/dr/.ferry/.sample-history

.PHONY: run test venv samples lint bench clean

run: $(STAMP) $(SAMPLES) $(HISTORY)
	$(BIN)/ferry console --jobs sample_repos/jobs

# two workers: most tests wait on subprocesses, sockets and disks, so the 2-core
# machines CI runs on finish in about half the time (TEST_WORKERS=0 runs in-process).
# Byte-compiled first: the tests start hundreds of `python -m engine.cli` processes, and
# where PYTHONDONTWRITEBYTECODE is set each would otherwise compile the engine again.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m compileall -q -j 0 engine console tests >/dev/null
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) $(PYTEST_ARGS)

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,serve]'
	touch $(STAMP)

samples: $(SAMPLES)

$(SAMPLES): $(STAMP) sample_repos/generate.py
	$(BIN)/python sample_repos/generate.py

# the sample copy jobs' past: one session each "yesterday", so the console is not empty
$(HISTORY): $(SAMPLES)
	$(BIN)/python sample_repos/generate.py --history

lint: $(STAMP)
	$(BIN)/ruff check engine console tests bench sample_repos
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/backup_bench.py
	$(BIN)/python bench/copy_bench.py

clean:
	rm -rf $(VENV) sample_repos/primary sample_repos/dr .cache
