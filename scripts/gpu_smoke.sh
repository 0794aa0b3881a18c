#!/usr/bin/env bash
# GPU smoke test for the vLLM backends: tiny models, draft, target and reward servers
# on 127.0.0.1 (the rewards on the pooling runner), SPECS with all three roles over HTTP
# and in-process. Needs the `vllm` wheel and
# this package importable (pip install -e '.[vllm,transformers,openai,test]'). Minutes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python}"
export HF_HUB_OFFLINE=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no GPU visible'; print('GPU:', torch.cuda.get_device_name(0))"
"$PY" -m pytest -m vllm -p no:cacheprovider -q tests/vllm/test_vllm.py "$@"
