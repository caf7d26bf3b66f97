# Two commands on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
BASE := $(VENV)/.base
STAMP := $(VENV)/.installed

.PHONY: install faces demo test lint bench bench-quick clean

# Bytecode is compiled on first import (--no-compile): compiling all of torch and Ray up
# front costs more than compiling the modules a run imports. A shell that sets
# PYTHONDONTWRITEBYTECODE would then make every process, each Ray worker included,
# compile torch and Ray again, so no recipe here inherits it.
unexport PYTHONDONTWRITEBYTECODE

$(BASE):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q --no-compile numpy pillow
	touch $@

# The full install keeps the numpy and Pillow that `faces` may be drawing with at that
# moment (pinned from pip freeze): if the project needed others, pip refuses loudly.
$(STAMP): pyproject.toml $(BASE)
	$(PIP) install -q --no-compile -e '.[dev,bench]' $$($(PIP) freeze | grep -iE '^(numpy|pillow)==')
	touch $@

# For runs outside make (`.venv/bin/gender ...`), whatever the shell says about bytecode.
install: $(STAMP)
	$(PY) -m compileall -q -j0 $(VENV)/lib > /dev/null

# The default synthetic faces need only numpy and Pillow, so `make demo` draws them while
# pip unpacks torch, at low priority so pip keeps its core; a set already drawn is kept.
faces: $(BASE)
	nice -n 10 $(PY) -c 'from gender.data.synth import default_data_dir; default_data_dir()'

demo:
	$(MAKE) --no-print-directory -j2 $(STAMP) faces
	$(VENV)/bin/gender tune --quick

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PIP) install -q --no-compile -e '.[bohb]' $$($(PIP) freeze | grep -iE '^(numpy|pillow)==')
	$(PY) -m benchmarks

bench-quick: $(STAMP)
	$(PY) -m benchmarks --quick

clean:
	rm -rf $(VENV) .pytest_cache
