# Two set-up commands on a fresh machine with Python >= 3.11:
#   make demo   creates .venv, installs, simulates the `demo` catalog entry, checks it, writes its preview and card,
#               trains a small classifier on it and evaluates it
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
	$(VENV)/bin/datagen generate demo --out $(OUT)/demo.zarr
	$(VENV)/bin/datagen verify $(OUT)/demo.zarr
	$(VENV)/bin/datagen info $(OUT)/demo.zarr
	$(VENV)/bin/datagen preview $(OUT)/demo.zarr --out $(OUT)/demo.png
	$(VENV)/bin/datagen card $(OUT)/demo.zarr --out $(OUT)/demo-card.md
	@echo "classifier smoke run: 29 training images are far too few to learn from; see the README for a real run"
	$(VENV)/bin/classifier train $(OUT)/demo.zarr --out $(OUT)/demo-model.pt --size 64 --epochs 5 --batch-size 8 --force
	$(VENV)/bin/classifier evaluate $(OUT)/demo-model.pt $(OUT)/demo.zarr --out $(OUT)/demo-eval --force

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_pattern.py
	$(PY) benchmarks/bench_structures.py
	$(PY) benchmarks/bench_multislice.py --quick
	$(PY) benchmarks/bench_generate.py
	$(PY) benchmarks/bench_classifier.py

clean:
	rm -rf $(VENV) $(OUT)
