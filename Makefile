# Two entry points for a fresh machine: `make demo` (main job) and `make test` (CI runs this).
# Both create or reuse the virtual environments: .venv (the engine) and .venv-bpy* (Blender as a
# Python module, for the add-on).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job: a sample clip -> motion file (engine) -> rigged, animated character (Blender).
demo: $(STAMP) .venv-bpy50/.installed
	$(BIN)/python -m core demo $(if $(VIDEO),--video $(VIDEO))
	.venv-bpy50/bin/python scripts/batch.py --motion out/sample_motion.npz --fbx out/sample.fbx \
		--blend out/sample.blend --preset unity --overwrite

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory test-blender

bench: $(STAMP)
	$(BIN)/python scripts/bench_sequence.py

clean:
	rm -rf $(VENV) .standins out

# ---------------------------------------------------------------------------------------------
# Blender add-on (staf_blender): one virtualenv per supported Blender line, each with the bpy
# module (a ~370 MB wheel; numpy<2 as bpy requires). The tests inside Blender compare against a
# reference bundle the main venv writes (tests/blender/make_reference.py): torch never enters bpy.
BPY_42 := 4.2.0
BPY_45 := 4.5.15
BPY_50 := 5.0.1
BPY_LINES := 45 50# CI's lines; `make test-blender BPY_LINES="42 45 50"` adds 4.2 LTS
BLENDER_REF := build/blender-ref
BLENDER_TEST_TIMEOUT := 600

.PHONY: blender-venvs blender-ref test-blender extension bench-blender clean-blender

# ufbx (pinned: its Python API is young) is an FBX reader independent of Blender: the tests read
# every FBX they export with it, besides Blender's own importer.
.venv-bpy%/.installed:
	$(PYTHON) -m venv .venv-bpy$*
	.venv-bpy$*/bin/python -m pip install --quiet --upgrade pip
	.venv-bpy$*/bin/python -m pip install --quiet "bpy==$(BPY_$*)" "numpy>=1.26,<2" "pytest>=8" "ufbx==0.0.5"
	touch $@

blender-venvs: $(foreach v,$(BPY_LINES),.venv-bpy$(v)/.installed)

blender-ref: $(STAMP)
	$(BIN)/python tests/blender/make_reference.py $(BLENDER_REF)

# The Blender-side tests under every Blender line (the bpy-free ones run in `make test`'s pytest).
test-blender: blender-venvs blender-ref
	@for v in $(BPY_LINES); do \
		echo "== Blender tests, bpy $$v"; \
		STAF_BLENDER_REF=$(BLENDER_REF) timeout $(BLENDER_TEST_TIMEOUT) .venv-bpy$$v/bin/python -m pytest -q \
			-p no:cacheprovider --confcutdir=tests/blender/in_blender tests/blender/in_blender || exit 1; \
	done

# The installable extension zip (build/extension/), checked by Blender's own validator.
extension: .venv-bpy50/.installed
	$(PYTHON) scripts/build_extension.py --validate auto

bench-blender: blender-venvs $(STAMP)
	$(BIN)/python scripts/bench_import.py --write-motion build/bench/motion10k.npz --frames 10000
	@for v in $(BPY_LINES); do .venv-bpy$$v/bin/python scripts/bench_import.py --motion build/bench/motion10k.npz; done

clean-blender:
	rm -rf $(foreach v,$(BPY_LINES),.venv-bpy$(v)) $(BLENDER_REF) build/extension build/bench
