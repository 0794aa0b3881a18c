#!/usr/bin/env bash
# GPU smoke test for the vLLM backends: tiny models, a draft and a target server on
# 127.0.0.1, one SPECS search over HTTP and one in-process. Needs the `vllm` wheel and
# this package importable (pip install -e '.[vllm,transformers,openai]'). Minutes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python}"
export HF_HUB_OFFLINE=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no GPU visible'; print('GPU:', torch.cuda.get_device_name(0))"
"$PY" -m pytest -m vllm -p no:cacheprovider -q tests/test_vllm.py "$@"
