# Two commands for a fresh machine: `make run` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test venv bench clean load screenshots

# `make load`: locust against a fresh server (perf/load.py); report in perf/results/.
LOAD_USERS ?= 50
LOAD_SECONDS ?= 60
LOAD_RATE ?= 20

# HASHED=1: every dependency from constraints.txt, hash-checked (Linux x86_64,
# CPython 3.11); HASHED=0: from setup.cfg's floors (other platforms).
HASHED ?= 1

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
ifeq ($(HASHED),1)
	$(BIN)/pip install -q --require-hashes --no-deps -r constraints.txt
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
	$(BIN)/python .ci/constraints.py check
else
	$(BIN)/pip install -q -e '.[dev,perf]'
endif
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/tapgrid serve $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Retake the README's two pictures (desktop and phone) from a real game.
screenshots: $(STAMP)
	TAPGRID_RETAKE_SCREENSHOTS=1 $(BIN)/python -m pytest -p no:cacheprovider -q \
		tests/web/test_page.py -k screenshot

bench: $(STAMP)
	$(BIN)/python perf/bench_engine.py

load: $(STAMP)
	$(BIN)/python perf/load.py --users $(LOAD_USERS) --seconds $(LOAD_SECONDS) --rate $(LOAD_RATE)

clean:
	rm -rf $(VENV) *.egg-info
