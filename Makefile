# Two commands for a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs the pinned CPU build of torch first, so that pip
# does not pull a multi-GB CUDA build while resolving the other dependencies.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.skbert-installed

.PHONY: install demo test lint docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test,docs]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) benchmarks/demo.py

lint: install
	$(VENV)/bin/ruff check skbert tests benchmarks

# The documentation site (mkdocs.yml): strict, so a broken link or docstring fails it.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The suite runs twice, with inference_dtype="auto" forced to bf16 and to fp32 on the
# CPU, so that it passes on every kind of CPU whatever this one's probe says. The second
# pass leaves out the slow tests (the real default model and the docs' examples, which
# check behaviour, not numbers of one precision) and those marked any_precision (which
# never run torch's "auto" path) to keep CI well under 30 minutes.
test: lint docs
	$(PY) -m pytest --cpu-bf16=on
	$(PY) -m pytest --cpu-bf16=off -m "not slow and not any_precision"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
