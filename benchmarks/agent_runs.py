"""The README's agent figures in one artefact: both agent examples on the default preset.

Why a script of its own: the examples print their report for a reader; this keeps the same
rows and totals, with the revision and machine, in benchmarks/results/agent_runs.json.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/agent_runs.py [--models D T R] [--scale S]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "examples")]

from artefact import write_artefact  # noqa: E402

import agent_tools  # noqa: E402
import llama_index_agent  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    figures = {"langchain_create_agent": agent_tools.main(argv),
               "llama_index_function_agent": llama_index_agent.main(argv)}
    path = write_artefact("agent_runs", figures,
                          notes="examples/agent_tools.py and examples/llama_index_agent.py")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
