#!/usr/bin/env bash
# Create .venv in the checkout and install Steel into it.
# torch: an already importable torch (e.g. a CUDA build on a GPU machine) is kept by giving the venv
# the system site-packages; otherwise torch==2.13.0 (the CPU build on our machines) is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "setup: using the torch already importable from $PY ($("$PY" -c 'import torch; print(torch.__version__)'))"
    "$PY" -m venv --system-site-packages .venv
  else
    "$PY" -m venv .venv
  fi
fi
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/pip install -q "torch==2.13.0"
fi
.venv/bin/pip install -q -e ".[dev]"
# Qwen's rank file ships inside dashscope; we only need the file, not the SDK or its dependencies.
.venv/bin/pip install -q --no-deps "dashscope>=1.14"
touch .venv/.steel-installed
