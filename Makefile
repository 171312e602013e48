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
	@# The Spark tests need a Java runtime (17 or later for Spark 4): installed with apt-get
	@# where none is on PATH and this runs as root; otherwise those tests skip, saying how.
	@command -v java >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends default-jre-headless >/dev/null; } \
		|| echo "No Java runtime: the Spark tests will skip (apt-get install default-jre-headless)."
	touch $(STAMP)

install: $(STAMP)

# make demo QUICK=1: 1,000 texts and one epoch, a few times faster.
QUICK ?=
demo: install
	$(PY) benchmarks/demo.py $(if $(QUICK),--quick)

lint: install
	$(VENV)/bin/ruff check skbert tests benchmarks

# The documentation site (mkdocs.yml): strict, so a broken link or docstring fails it.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The fast tests run twice, with inference_dtype="auto" forced to bf16 and to fp32 on the
# CPU, so that the suite passes on every kind of CPU whatever this one's probe says (the
# second pass leaves out those marked any_precision, which never run torch's "auto" path).
# The slow tests (the real default model, the docs' examples and the golden outputs)
# check behaviour, not numbers of one precision: they run once, in the precision this
# CPU's probe picks. Forced to bf16 on a CPU without bf16 units they ran emulated bf16,
# many times slower (the README's examples alone took over 25 minutes on an AVX2 EPYC).
test: lint docs
	$(PY) -m pytest --cpu-bf16=on -m "not slow"
	$(PY) -m pytest --cpu-bf16=off -m "not slow and not any_precision"
	$(PY) -m pytest --cpu-bf16=probe -m slow

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
