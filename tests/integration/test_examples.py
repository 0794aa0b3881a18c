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


def _check_agent_report(report: dict) -> None:
    rows, summary = report["rows"], report["summary"]
    assert len(rows) == summary["tasks"] == 4
    assert summary["right"] == sum(r["right"] for r in rows)
    for row in rows:
        assert isinstance(row["answer"], str) and row["wall_s"] > 0
        assert row["tool_calls"] == len(row["calls"])


def test_agent_tools_example_runs_its_tasks(tiny_args):
    _check_agent_report(_main("agent_tools")(tiny_args))


def test_llama_index_agent_example_runs_its_tasks(tiny_args):
    _check_agent_report(_main("llama_index_agent")(tiny_args))


def _scripted_calculator():
    from tests.helpers.agent_scripts import agent_engine, call_text

    return agent_engine(call_text("calculator", {"expression": "37 * 23"}), "37 times 23 is 851.")


def test_agent_tools_example_counts_a_scripted_call_and_a_right_answer():
    """The example's own bookkeeping, on a model scripted to call the calculator."""
    from langchain.agents import create_agent

    from specs_integrations.langchain import ChatSpecs

    _main("agent_tools")  # loads the module
    module = sys.modules["agent_tools"]
    agent = create_agent(ChatSpecs(engine=_scripted_calculator()), module.TOOLS)
    row = module.run_task(agent, "What is 37 times 23?", 851.0, 5.0)
    assert row["calls"] == ["calculator({'expression': '37 * 23'})"] and row["right"]


async def test_llama_index_agent_example_counts_a_scripted_call_and_a_right_answer():
    from specs_integrations.llama_index import SpecsLLM

    _main("llama_index_agent")
    module = sys.modules["llama_index_agent"]
    row = await module.run_task(SpecsLLM(engine=_scripted_calculator()), "What is 37 times 23?", 851.0)
    assert row["calls"] == ["calculator({'expression': '37 * 23'})"] and row["right"]


def test_the_example_calculator_evaluates_arithmetic_only():
    sys.path.insert(0, str(EXAMPLES))
    import _agent_tasks

    assert _agent_tasks.calculator("(120 - 45) / 5") == "15"
    assert _agent_tasks.calculator("__import__('os')").startswith("error")
    assert _agent_tasks.price_lookup("Pens") == "3"
