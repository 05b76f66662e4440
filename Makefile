# Two commands for a newcomer: `make demo` (set up + run the main job) and `make test` (set up + tests).
VENV := .venv
PY := $(VENV)/bin/python
STEEL := $(VENV)/bin/steel
SHARED ?= ../shared/data
DEMO_OUT ?= runs/demo

.PHONY: setup demo test bench clean

$(VENV)/.steel-installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

setup: $(VENV)/.steel-installed

demo: setup
	$(STEEL) data prepare configs/data/shared-sample.yaml --set root=$(SHARED) --out $(DEMO_OUT)/data

test: setup
	TRITON_INTERPRET=1 $(PY) -m pytest -q -p no:cacheprovider

clean:
	rm -rf runs .pytest_cache
