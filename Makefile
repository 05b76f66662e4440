# Two commands for a newcomer: `make demo` (set up + run the main job) and `make test` (set up + tests).
VENV := .venv
PY := $(VENV)/bin/python
STEEL := $(VENV)/bin/steel
SHARED ?= ../shared/data
DEMO_OUT ?= runs/demo

.PHONY: setup demo test lint gpu-bench gpu-test clean

$(VENV)/.steel-installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

setup: $(VENV)/.steel-installed

demo: setup
	$(STEEL) data prepare configs/data/shared-sample.yaml --set root=$(SHARED) --out $(DEMO_OUT)/data
	OMP_NUM_THREADS=1 $(STEEL) train configs/train/tiny-cpu.yaml --set run_dir=$(DEMO_OUT)/train --set data.dirs=[$(DEMO_OUT)/data]
	$(STEEL) plot $(DEMO_OUT)/train
	$(STEEL) eval mc --model $(DEMO_OUT)/train --task cmmlu --data $(SHARED)/cmmlu --shots 0 --limit 4 --out $(DEMO_OUT)/cmmlu.json
	$(STEEL) generate --model $(DEMO_OUT)/train --prompt "中国的首都是" --max-new-tokens 24
	$(STEEL) export $(DEMO_OUT)/train $(DEMO_OUT)/hf --overwrite

test: setup
	TRITON_INTERPRET=1 $(PY) -m pytest -q -p no:cacheprovider

lint: setup
	$(VENV)/bin/ruff check src tests bench

# On a GPU machine with its own torch/triton/transformers (no .venv, nothing to download): the benchmark
# of issue 5 (log in $$OUT/gpu_throughput.log when OUT is set), then the CUDA tests, kernels compiled for real.
# TRITON_INTERPRET is unset: left from a CPU test run, it would make the kernels fall back to the references.
# `python3` is the interpreter that holds PyTorch on the lent GPU machines (PYTHON_GPU=... for another). Only the
# test folders that hold `gpu` tests are collected: the data tests import zstandard, which that image lacks, and
# one collection error would stop every test. No pytest there? `pip install --target .gpu-deps pytest`, carry it.
PYTHON_GPU ?= python3
GPU_TEST_DIRS := tests/kernels tests/model tests/train tests/infer

gpu-bench:
	env -u TRITON_INTERPRET PYTHONPATH=src $(PYTHON_GPU) bench/gpu_throughput.py

gpu-test:
	env -u TRITON_INTERPRET PYTHONPATH=src:.gpu-deps $(PYTHON_GPU) -m pytest -q -p no:cacheprovider -m gpu $(GPU_TEST_DIRS)

clean:
	rm -rf runs .pytest_cache
