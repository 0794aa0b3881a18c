"""A LlamaIndex FunctionAgent with the same two tools (a calculator and a price table) on
SpecsLLM, a FunctionCallingLLM: every agent step is one SPECS search whose tool calls are
checked against the tools' schemas inside the search.

Agents pass no per-call settings, so the per-step budget lives on the LLM instance
(`with_budget` makes a copy that shares the loaded models).

    python examples/llama_index_agent.py                 # the qwen2.5-coder preset
    python examples/llama_index_agent.py --models DRAFT TARGET REWARD --scale 0.1
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from llama_index.core.agent.workflow import AgentOutput, FunctionAgent, ToolCallResult
from llama_index.core.tools import FunctionTool

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _agent_tasks as tasks  # noqa: E402
from _models import model_locations, parse  # noqa: E402

from specs_integrations.llama_index import SpecsLLM  # noqa: E402

TOOLS = [FunctionTool.from_defaults(fn=tasks.calculator),
         FunctionTool.from_defaults(fn=tasks.price_lookup)]


async def run_task(llm: SpecsLLM, question: str, expected: float) -> dict[str, Any]:
    """One task through a fresh agent; the calls it ran, its answer, its time."""
    agent = FunctionAgent(tools=TOOLS, llm=llm, system_prompt=tasks.SYSTEM)
    started = time.monotonic()
    handler = agent.run(user_msg=question, max_iterations=8)
    calls, raws = [], []
    async for event in handler.stream_events():
        if isinstance(event, ToolCallResult):
            calls.append(f"{event.tool_name}({event.tool_kwargs})")
        elif isinstance(event, AgentOutput) and isinstance(event.raw, dict):
            raws.append(event.raw)  # one per agent step: that step's search
    answer = str(await handler)
    rejected = sum(raw.get("candidates_rejected_structure", 0) for raw in raws)
    invalid = sum(raw.get("structure_valid") is False for raw in raws)
    return {"question": question, "answer": answer, "right": tasks.is_right(answer, expected),
            "calls": calls, "tool_calls": len(calls), "invalid_tool_calls": invalid,
            "rejected_structure": rejected, "wall_s": time.monotonic() - started}


async def run_all(llm: SpecsLLM) -> list[dict[str, Any]]:
    return [await run_task(llm, question, expected) for question, expected in tasks.TASKS]


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    args = parse(__doc__.splitlines()[0], argv)
    llm = SpecsLLM(**model_locations(args), max_steps=6, max_new_tokens=192, n=2, beam_width=2)
    llm.warm_up()  # load and run the models first: that is no part of any step's budget
    rows = asyncio.run(run_all(llm.with_budget(latency_budget_s=tasks.STEP_BUDGET_S * args.scale)))
    return {"rows": rows, "summary": tasks.print_report(rows, "FunctionAgent + SpecsLLM")}


if __name__ == "__main__":
    main()
