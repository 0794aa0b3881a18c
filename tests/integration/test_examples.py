"""The examples run offline on tiny models: main() imported for the three, and one run
as a real subprocess the way a user starts it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _main(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # LangGraph resolves the state's type hints through it
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture
def tiny_args(tiny_draft_dir, tiny_target_dir, tiny_reward_dir) -> list[str]:
    return ["--models", str(tiny_draft_dir), str(tiny_target_dir), str(tiny_reward_dir),
            "--scale", "0.1"]


def test_lcel_chain_answers_on_two_budgets(tiny_args):
    report = _main("lcel_chain")(tiny_args)
    assert set(report) == {"tight", "loose"}
    for row in report.values():
        assert isinstance(row["text"], str) and isinstance(row["budget_exhausted"], bool)
        assert row["steps_from_draft"] + row["steps_from_target"] >= 1
        assert row["wall_s"] < 30 * 0.1 + 2  # within the budget plus a small overrun


def test_langgraph_agent_step_reasons_and_checks(tiny_args):
    report = _main("langgraph_agent_step")(tiny_args)
    assert 1 <= len(report) <= 2
    if len(report) == 2:  # a retry happens only after a tight budget ran out
        assert report[0]["budget_exhausted"] and report[0]["answer"] is None


def test_llama_index_rag_streams_and_retrieves(tiny_args):
    report = _main("llama_index_rag")(tiny_args)
    assert report["deltas"] and all(isinstance(d, str) for d in report["deltas"])
    assert "cafe.txt" in report["sources"]  # the hashed-words embedding found it
    assert isinstance(report["quick"], str)


def test_an_example_runs_as_a_script(tiny_draft_dir, tiny_target_dir, tiny_reward_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SPECS_DRAFT": str(tiny_draft_dir),
           "SPECS_TARGET": str(tiny_target_dir), "SPECS_REWARD": str(tiny_reward_dir)}
    done = subprocess.run([sys.executable, str(EXAMPLES / "lcel_chain.py"), "--scale", "0.1"],
                          env=env, capture_output=True, text=True, timeout=120,
                          cwd=EXAMPLES.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--- tight budget" in done.stdout and "--- loose budget" in done.stdout
