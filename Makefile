# Two commands do all set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.cnnexp-installed

.PHONY: install demo test test-slow lint bench clean

install: $(STAMP)

# The editable install maps recipes/ into the package (cnnexp.recipes) from outside it, so
# setuptools picks its meta-path-finder strategy and says so in a 10-line notice on every
# install; the notice is information only, and the filter hides nothing else.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/cnnexp sanity
	$(BIN)/cnnexp search --trials coarse=8,fine=4
	$(BIN)/cnnexp train --test --register digits-demo
	$(BIN)/python -m cnnexp.serving.samples outputs/demo-digits 8
	$(BIN)/cnnexp predict models:/digits-demo/latest outputs/demo-digits
	@echo "Review the runs: $(BIN)/cnnexp ui   (then open http://127.0.0.1:5000)"

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check cnnexp tests benchmarks

bench: install
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info mlflow.db mlruns
