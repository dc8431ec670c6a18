# Two commands do all set-up on a fresh machine: `make train` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install train test test-all test-gpu bench docs clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# quiet unless it fails: then the whole log
	@$(BIN)/python -m pip install -q --upgrade pip > $(VENV)/install.log 2>&1 \
		&& $(BIN)/python -m pip install -q -e '.[test]' >> $(VENV)/install.log 2>&1 \
		|| (cat $(VENV)/install.log; echo "make: installing into $(VENV) failed (log: $(VENV)/install.log)"; exit 1)
	touch $(STAMP)

install: $(STAMP)

# Train and evaluate the default model (ssd_lite) on the built-in synthetic data; prints the results table.
train: $(STAMP)
	$(BIN)/zoo-train $(ARGS)

# The fast suite (< 10 minutes on 2 cores); `make test-all` adds the slow tests.
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
