# fer-study: `make demo` and `make test` do all the set-up on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.install-stamp
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (one per core; test files stay whole, so a module's Ray
# session is shared by its tests); TEST_WORKERS=0 runs the suite in this one process.
TEST_WORKERS ?= 2
comma   := ,

.PHONY: demo test lint format bench clean install reports

# Re-install only when the project's metadata changed (the stamp is newer than pyproject.toml).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m fer_core.demo

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The measured synth-profile report of every shipped study (or STUDY=name) into reports/<study>/,
# resuming finished runs in runs/<study>-synth/: hours for all of them on 2 cores.
reports: $(STAMP)
	$(BIN)/python -m fer_core.report.curate $(if $(STUDY),$(foreach s,$(subst $(comma), ,$(STUDY)),--study $(s)))

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) runs outputs .pytest_cache
