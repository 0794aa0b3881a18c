#!/usr/bin/env bash
# Creates .venv with the package and everything the tests and examples use.
# torch is installed first, pinned, so no requirement below can pull a CUDA build
# (override with TORCH_SPEC, e.g. TORCH_SPEC="torch --index-url ..." on a GPU host).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="${SPECS_EXTRAS:-transformers,langchain,llama-index,openai,offline-models,plot,test}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q $TORCH_SPEC
.venv/bin/python -m pip install -q -e ".[${EXTRAS}]"
.venv/bin/python -c "import torch, specs_engine; print('installed: torch', torch.__version__)"
