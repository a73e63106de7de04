# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv and install everything on first use (about 2 minutes here).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.wsris-installed

# timm needs torchvision; these are the builds that match each other on this kind of
# machine (see docs/install.md). Override with `make TORCH="torch==X torchvision==Y"`.
ifeq ($(shell uname -m),aarch64)
TORCH ?= torch==2.9.1 torchvision==0.24.1
else
TORCH ?= torch==2.14.1 torchvision==0.29.1
endif

.PHONY: setup demo web-demo test test-fast lint bench notebooks

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(TORCH)
	$(BIN)/pip install -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/wsris segment examples/shapes_scene.png "the large red circle" \
		--model sag-shapes --out out/sag_mask.png --overlay out/sag_overlay.png \
		--heatmap out/sag_heatmap.png --overwrite
	$(BIN)/wsris segment examples/shapes_scene.png "the large red circle" \
		--model albef-chunk-shapes --out out/chunk_mask.png --overlay out/chunk_overlay.png \
		--heatmap out/chunk_heatmap.png --overwrite

# the local web page on http://127.0.0.1:7860/ (Ctrl-C stops)
web-demo: $(STAMP)
	$(BIN)/wsris demo

# everything: lint, every test, the notebooks
test: $(STAMP)
	$(BIN)/ruff check wsris tests benchmarks scripts notebooks lab
	$(BIN)/pytest

# the edit-test loop (under a minute): no slow tests, no notebooks
test-fast: $(STAMP)
	$(BIN)/pytest -o addopts="" -q -m "not slow" -p no:cacheprovider tests

# re-run every notebook and write its outputs (figures included) back into the .ipynb
notebooks: $(STAMP)
	$(BIN)/pytest -o addopts="" -q -p no:cacheprovider --nbmake --overwrite notebooks

lint: $(STAMP)
	$(BIN)/ruff check wsris tests benchmarks scripts notebooks lab

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run
