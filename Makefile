# Two commands do all set-up on a fresh machine: `make train` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Selective search (zoo-proposals, data.<split>.proposals=selective_search) is in OpenCV's contrib modules. albumentations
# requires opencv-python-headless, so the contrib build of the same version goes over it, without dependencies (both
# own cv2/: a later pip reinstall or removal of either one breaks or strips cv2; `make clean install` restores it).
OPENCV_CONTRIB := opencv-contrib-python-headless==$(shell sed -n 's/^ *opencv-python-headless==//p' setup.cfg)

.PHONY: install train test test-all test-gpu bench docs clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# quiet unless it fails: then the whole log
	@$(BIN)/python -m pip install -q --upgrade pip > $(VENV)/install.log 2>&1 \
		&& $(BIN)/python -m pip install -q -e '.[test]' >> $(VENV)/install.log 2>&1 \
		&& $(BIN)/python -m pip install -q --no-deps $(OPENCV_CONTRIB) >> $(VENV)/install.log 2>&1 \
		|| (cat $(VENV)/install.log; echo "make: installing into $(VENV) failed (log: $(VENV)/install.log)"; exit 1)
	touch $(STAMP)

install: $(STAMP)

# The first run (conf/demo.yaml): ssd_demo, ssd_lite's design at 160 px, trained and scored on small built-in
# synthetic shapes in a few minutes on 2 cores; prints its table, its folder and what to run next.
# ARGS adds zoo-train overrides; the full synthetic recipe is `zoo-train` with no config name (about 30 minutes).
train: $(STAMP)
	@echo "make train: ssd_demo (ssd_lite's SSD design at 160 px, 4 levels) trained from scratch on 2,000 synthetic 160-px images (5 shapes, 16-48 px) for 9 epochs, then scored on 300 more"
	$(BIN)/zoo-train --config-name demo $(ARGS)

# The fast suite (under 6 minutes on 2 cores); `make test-all` adds the slow tests.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q $(ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m "not gpu" $(ARGS)

# The CUDA paths (tests/gpu/); skipped where torch sees no CUDA device.
test-gpu: $(STAMP)
	$(BIN)/python -m pytest -q -m gpu tests/gpu $(ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/ssd_inference.py $(ARGS)
	$(BIN)/python benchmarks/detector_latency.py $(ARGS)

# The documentation site (docs/, mkdocs.yml) into site/; strict: a broken link or nav entry fails the build.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict -d site

clean:
	rm -rf $(VENV) runs outputs multirun .pytest_cache site
