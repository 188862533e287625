# Two commands for a new user: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-core coverage bench bench-5000 image lint clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The demo: the daemon against a simulated AWS account while a 40-second migration story plays;
# serves /metrics on :9917 meanwhile, then exits (README, "The demo").
demo: $(STAMP)
	$(BIN)/alb-sg-monitor demo

# The suite waits on servers and daemons far more than it computes, so it runs in TEST_WORKERS
# processes (pytest-xdist) even on 2 CPUs; TEST_WORKERS=0 runs it in one. Six are faster on a quiet
# machine, but under a full CPU load the demo's accelerated story then misses detections.
TEST_WORKERS ?= 4

test: $(STAMP)
	scripts/test-prerequisites
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/pytest -q -n $(TEST_WORKERS)

# The pure core's tests alone (tests/core): no servers, no binaries, seconds.
test-core: $(STAMP)
	$(BIN)/pytest -q tests/core

# `make test` with line coverage of monitor/. Counted in the test processes only: the commands some
# tests run as a subprocess of their own are not.
coverage: $(STAMP)
	scripts/test-prerequisites
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/pytest -q -n $(TEST_WORKERS) --cov=monitor --cov-report=term

# The monitor at 10, 100 and 1,000 ALBs beside a per-ALB checker: requests, wall, CPU, peak RSS,
# revocation and new-ALB latency; writes bench/results.md with the budgets held or not. On a shared
# 2-CPU machine 10 ALBs took 68 s, 100 took 99 s and 1,000 took 7 minutes (the per-ALB checker's
# pass alone 2). bench-5000 adds 5,000 ALBs (no per-ALB checker there): 26 minutes more (seeding 5,
# the observing daemon's first discovery 13).
bench: $(STAMP)
	$(BIN)/python -m bench.benchmark --albs 10 100 1000

bench-5000: $(STAMP)
	$(BIN)/python -m bench.benchmark --albs 10 100 1000 5000

# Container image with buildah (root, no Docker engine) on a base scripts/base-image makes from the
# machine's Debian mirror (or BASE_IMAGE); smoke-runs it as UID 65532, a `check` against a loopback
# moto server included (hence the venv); prints build time and size. Not part of `test`: it takes
# a few minutes and needs root. .ci/run runs it after the tests.
image: $(STAMP)
	PYTHON=$(BIN)/python scripts/build-image

# The import contracts of .importlinter (the layers, no cycles, one adapter per SDK); tests run it too.
lint: $(STAMP)
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info
