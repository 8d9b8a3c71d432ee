# Two set-up commands on a fresh machine with Python >= 3.11:
#   make demo   creates .venv, installs the locked environment, simulates the `demo` catalog entry, checks it
#               against its reference build, writes its preview and card, trains a small classifier and evaluates it
#   make test   creates .venv (if needed) from the same lock, runs the tests
# The environment is requirements.lock: exact versions with their sha256 hashes, the same for the set-up, CI and the
# reference builds. `make relock` resolves the newest allowed versions again, rewrites the lock and rebuilds the
# references (see the README, "Reproducible builds").
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= data
LOCK := requirements.lock
# Entries with a reference build, rebuilt by `make references` (ENTRIES="demo pattern-demo" for a subset).
# A recorded entry follows its noise-free base, whose images it records again (--images-from); a Dr Probe entry
# builds Dr Probe's programs first (make drprobe).
ENTRIES ?= demo pattern-demo pattern-v1 ag-80kv-v1 pt-200kv-v1 simulation-c-v1 simulation-c-recorded-v1 \
	simulation-c-si-v1 poly-v1 poly-recorded-v1 poly-drprobe-small-v1

.PHONY: demo test bench clean lock references relock segmenter classifier-model drprobe

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

demo: $(VENV)/.installed
	mkdir -p $(OUT)
	$(VENV)/bin/datagen generate demo --out $(OUT)/demo.zarr
	$(VENV)/bin/datagen verify $(OUT)/demo.zarr --against demo
	$(VENV)/bin/datagen info $(OUT)/demo.zarr
	$(VENV)/bin/datagen preview $(OUT)/demo.zarr --out $(OUT)/demo.png --force
	$(VENV)/bin/datagen card $(OUT)/demo.zarr --out $(OUT)/demo-card.md --force
	@echo "classifier smoke run: 29 training images are far too few to learn from; see the README for a real run"
	$(VENV)/bin/classifier train $(OUT)/demo.zarr --out $(OUT)/demo-model.pt --size 64 --epochs 5 --batch-size 8 --force
	$(VENV)/bin/classifier evaluate $(OUT)/demo.zarr --model $(OUT)/demo-model.pt --out $(OUT)/demo-eval --force

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_pattern.py
	$(PY) benchmarks/bench_structures.py
	$(PY) benchmarks/bench_multislice.py --quick
	$(PY) benchmarks/bench_generate.py
	$(PY) benchmarks/bench_classifier.py

# The newest versions pyproject.toml allows, resolved in a throw-away environment, frozen with their hashes.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[test]' hatchling editables uv
	.lock-venv/bin/python -m pip freeze --exclude-editable --all | grep -v '^uv==' > .lock-venv/frozen.txt
	.lock-venv/bin/uv pip compile .lock-venv/frozen.txt --generate-hashes --no-header --quiet \
		--python-version 3.11 --no-strip-extras -o $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	rm -rf .lock-venv

# Rebuild each entry's reference with the locked environment and record its content hash and fingerprint.
references: $(VENV)/.installed
	mkdir -p $(OUT)/references
	for e in $(ENTRIES); do \
		case $$e in *-recorded-v1) from="--images-from $(OUT)/references/$${e%-recorded-v1}-v1.zarr";; *) from="";; esac; \
		case $$e in *drprobe*) $(MAKE) drprobe || exit 1;; esac; \
		rm -rf $(OUT)/references/$$e.zarr && \
		$(VENV)/bin/datagen generate $$e --out $(OUT)/references/$$e.zarr $$from && \
		$(VENV)/bin/datagen reference $(OUT)/references/$$e.zarr --force || exit 1; \
	done

relock:
	$(MAKE) lock
	rm -rf $(VENV)
	$(MAKE) references

# The U-Net of `classifier analyse --detector unet`: build the fields it learns from (particles, and bare
# support as negatives), train it, write its weights.
segmenter: $(VENV)/.installed
	mkdir -p $(OUT)
	$(VENV)/bin/datagen generate fields-v1 --out $(OUT)/fields-v1.zarr
	$(VENV)/bin/datagen generate fields-support-v1 --out $(OUT)/fields-support-v1.zarr
	$(VENV)/bin/classifier segment train $(OUT)/fields-v1.zarr $(OUT)/fields-support-v1.zarr --out classifier/detection/weights/unet-v2.pt --device cpu --force

# The shipped classifier (the default of `classifier evaluate`, `infer` and `analyse`): poly-fast-v1 simulated (the
# paper's largest set at 0.1 Å, about 40 minutes on 2 cores), recorded as cameras record it (poly-fast-recorded-v1,
# minutes), a ResNet-18 trained on that at 112 px with the paper's augmentations, evaluated on the test splits of
# MODEL_EVAL (each entry generated first where absent: add poly-v1, simulation-c-v1 or simulation-c-si-v1 for the
# paper's sets, hours each on a CPU), and its model card.
MODEL := classifier/weights/resnet18-poly-fast-recorded-v1.pt
MODEL_EVAL ?= poly-fast-recorded-v1 poly-fast-v1
classifier-model: $(VENV)/.installed
	mkdir -p $(OUT)/model-card
	$(VENV)/bin/datagen generate poly-fast-v1 --out $(OUT)/poly-fast-v1.zarr
	$(VENV)/bin/datagen generate poly-fast-recorded-v1 --out $(OUT)/poly-fast-recorded-v1.zarr --images-from $(OUT)/poly-fast-v1.zarr
	$(VENV)/bin/classifier train $(OUT)/poly-fast-recorded-v1.zarr --size 112 --augment paper --half --device cpu \
		--out $(MODEL) --force
	for e in $(MODEL_EVAL); do \
		$(VENV)/bin/datagen generate $$e --out $(OUT)/$$e.zarr && \
		$(VENV)/bin/classifier evaluate $(OUT)/$$e.zarr --model $(MODEL) --out $(OUT)/model-card/$$e --force || exit 1; done
	$(VENV)/bin/classifier card $(MODEL) $(addprefix $(OUT)/model-card/,$(MODEL_EVAL)) --rebuild "make classifier-model" --force

# Dr Probe's command-line tools (celslc, msa, wavimg; GPL-3.0), compiled from source into .drprobe/bin, where the
# drprobe backend finds them by default: with DRPROBE_KIT, a folder holding the upstream source/ with build.sh and
# gfortran.patch beside it (../shared/vendor/drprobe_clt/README.md); gfortran and MKL are installed where missing.
DRPROBE_KIT ?= ../shared/vendor/drprobe_clt
DRPROBE_BIN := .drprobe/bin
drprobe: $(DRPROBE_BIN)/msa

$(DRPROBE_BIN)/msa:  # the last program build.sh writes
	@test -f "$(DRPROBE_KIT)/build.sh" || { echo "make drprobe: no build kit at $(DRPROBE_KIT) (build.sh, gfortran.patch and source/; set DRPROBE_KIT=DIR)"; exit 1; }
	bash "$(DRPROBE_KIT)/build.sh" $(DRPROBE_BIN)

clean:
	rm -rf $(VENV) $(OUT)
