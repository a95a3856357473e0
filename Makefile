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

# Benchmarks (docs/benchmarks.md): every script at a CPU-friendly size, ~50 min on
# 2 cores; JSON under benchmarks/results/ (git-ignored).
BENCH_OUT ?= benchmarks/results
.PHONY: bench
bench: install  ## side-by-side speed, memory and peer benchmarks (not part of `make test`)
	PYTHONPATH=$(CURDIR) $(PY) benchmarks/bench_compress_cost.py --docs 64 --rounds 3 --out $(BENCH_OUT)/compress_cost.json
	PYTHONPATH=$(CURDIR) $(PY) benchmarks/bench_hpool.py --docs 256 --out $(BENCH_OUT)/hpool.json
	PYTHONPATH=$(CURDIR) $(PY) benchmarks/bench_roofline.py --docs 128 --out $(BENCH_OUT)/roofline.json
	PYTHONPATH=$(CURDIR) $(PY) benchmarks/bench_peers.py --docs 200 --queries 100 --out $(BENCH_OUT)/peers.json
	PYTHONPATH=$(CURDIR) $(PY) benchmarks/bench_train_step.py --out $(BENCH_OUT)/train_step.json
	PYTHONPATH=$(CURDIR) $(PY) benchmarks/bench_lossless.py --docs 64 --out $(BENCH_OUT)/lossless.json
	PYTHONPATH=$(CURDIR) $(PY) benchmarks/bench_memory.py --docs 128 --out $(BENCH_OUT)/memory.json
	PYTHONPATH=$(CURDIR) $(PY) benchmarks/bench_scale.py --doc-length 16 --scale 5 --chunk-docs 1024 --out $(BENCH_OUT)/scale.json
