# Every target sets up .venv first when it is missing or pyproject.toml changed. One .venv,
# two stamps: training needs only the core and the `train` extra (no PyTorch, pytest or
# ruff); the other targets install the `test` and `dev` extras as well.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TRAIN_STAMP := $(VENV)/.installed-train
STAMP := $(VENV)/.installed-all

# the public modules that `make lint` type-checks (settings in pyproject.toml)
TYPED := seqjax/__init__.py seqjax/typing.py seqjax/cells.py seqjax/scan.py \
	seqjax/combinators.py seqjax/attention.py seqjax/decoding.py seqjax/interop.py \
	seqjax/inspect.py seqjax/kernels/cpu.py \
	seqjax/nn seqjax/nnx

.PHONY: venv venv-train test test-fast lint format bench train proof compare docs

# --no-compile: pip would byte-compile every installed module (torch's thousands among
# them, a third of the set-up's time); Python compiles and caches those it imports.
$(TRAIN_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -e '.[train]'
	touch $(TRAIN_STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -e '.[train,test,dev]'
	touch $(STAMP) $(TRAIN_STAMP)

venv: $(STAMP)

venv-train: $(TRAIN_STAMP)

test: venv  ## the whole suite, slow end-to-end tests included, one process per core
	$(PY) -m pytest -q -n auto --durations=25

test-fast: venv  ## everything but the tests marked slow
	$(PY) -m pytest -q -n auto -m "not slow"

lint: venv
	$(VENV)/bin/ruff format --check seqjax tests scripts configs
	$(VENV)/bin/ruff check seqjax tests scripts configs
	$(VENV)/bin/mypy $(TYPED)

format: venv
	$(VENV)/bin/ruff format seqjax tests scripts configs
	$(VENV)/bin/ruff check --fix seqjax tests scripts configs

bench: venv  ## seqjax vs PyTorch and Flax: speed table on stdout, results in bench.json
	$(PY) scripts/bench.py --out bench.json

train: venv-train  ## the default experiment (dates) into runs/dates
	$(PY) scripts/train.py --config configs/default.py --workdir runs/dates

proof: venv-train  ## every experiment, then the README's results table from their summaries
	$(PY) scripts/proof.py

compare: venv-train  ## every architecture at a matched parameter budget: the README's comparison table
	$(PY) scripts/compare.py

docs: venv  ## the documentation site into site/, strict: a warning or broken reference fails
	$(VENV)/bin/mkdocs build --strict --site-dir site
