# Two commands for a new user: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench image lint clean

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

test: $(STAMP)
	scripts/test-prerequisites
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/pytest -q

# Figures, not verdicts: AWS requests per cycle, cycle time, memory, detection latency.
bench: $(STAMP)
	$(BIN)/python -m bench.benchmark --albs 50 200

# Container image with buildah (root, no Docker engine) on a base scripts/base-image makes from the
# machine's Debian mirror (or BASE_IMAGE); smoke-runs it as UID 65532, a `check` against a loopback
# moto server included (hence the venv); prints build time and size. Not part of `test`: it takes
# a few minutes and needs root. .ci/run runs it after the tests.
image: $(STAMP)
	PYTHON=$(BIN)/python scripts/build-image

clean:
	rm -rf $(VENV) build *.egg-info
