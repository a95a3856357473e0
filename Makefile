# colcompress: `make test` and `make run` install what they need first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Datasets: the shared folder when it is there, else ./data (downloaded on demand).
COLCOMPRESS_DATA_DIR ?= $(if $(wildcard ../shared/data/beir),$(abspath ../shared/data/beir),$(CURDIR)/data)
export COLCOMPRESS_DATA_DIR
export WANDB_MODE ?= offline
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test test-full run lint format clean reproduce-cpu

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,sweep]"
	$(PY) -c "from colcompress.evaluation.metrics import compile_kernels as c; print(f'ranx kernels compiled in {c():.0f} s')"
	touch $@

install: $(VENV)/.installed  ## venv with the pinned dependencies

test: install  ## the fast tier CI runs: every test not marked slow
	$(PY) -m pytest tests -q -m "not slow"

test-full: install  ## every test, the slow end-to-end runs included
	$(PY) -m pytest tests -q

run: install  ## train + index + evaluate the default config (MiniLM, NFCorpus), CPU preset
	$(PY) -m colcompress.run preset=cpu_fast $(ARGS)

lint: install
	$(VENV)/bin/ruff check colcompress tests benchmarks experiments
	$(VENV)/bin/ruff format --check colcompress tests benchmarks experiments

format: install
	$(VENV)/bin/ruff format colcompress tests benchmarks experiments
	$(VENV)/bin/ruff check --fix colcompress tests benchmarks experiments

clean:
	rm -rf logs .cache .pytest_cache

reproduce-cpu: install  ## every study at CPU scale + the tables of docs/results.md (~8 h)
	bash experiments/cpu_scale.sh $(OUT)
