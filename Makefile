# Two set-up commands on a fresh machine with Python >= 3.11:
#   make demo   creates .venv, installs, generates the pattern-demo catalog entry and its preview
#   make test   creates .venv, installs (with the test extras), runs the tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= data

.PHONY: demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	mkdir -p $(OUT)
	$(VENV)/bin/datagen generate pattern-demo --out $(OUT)/pattern-demo.zarr
	$(VENV)/bin/datagen info $(OUT)/pattern-demo.zarr
	$(VENV)/bin/datagen preview $(OUT)/pattern-demo.zarr --out $(OUT)/pattern-demo.png

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_pattern.py

clean:
	rm -rf $(VENV) $(OUT)
