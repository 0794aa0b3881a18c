"""A LangChain agent (langchain.agents.create_agent, a LangGraph graph) with two tools, a
calculator and a price table, whose every reasoning step is one SPECS search on its own
latency budget, passed through the graph's config.

The search checks each candidate's tool call against the tool's JSON schema: a call that
does not parse or fails the schema is never accepted (the step defers to the target), so
the agent only ever runs well-formed calls. Prints, per task, the calls that ran and the
answer, then the figures the README quotes (right answers, calls parsed, time).

    python examples/agent_tools.py                       # the qwen2.5-coder preset
    python examples/agent_tools.py --models DRAFT TARGET REWARD --scale 0.1
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.errors import GraphRecursionError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _agent_tasks as tasks  # noqa: E402
from _models import model_locations, parse  # noqa: E402

from specs_integrations.langchain import ChatSpecs  # noqa: E402

TOOLS = [tool(tasks.calculator), tool(tasks.price_lookup)]


def run_task(agent: Any, question: str, expected: float, step_budget_s: float) -> dict[str, Any]:
    """One task through the agent; what it called, what it answered, how long it took."""
    config = {"configurable": {"latency_budget_s": step_budget_s, "n": 2, "beam_width": 2},
              "recursion_limit": 10}
    started, messages = time.monotonic(), []
    try:
        for state in agent.stream({"messages": [HumanMessage(question)]}, config,
                                  stream_mode="values"):
            messages = state["messages"]
    except GraphRecursionError:  # the agent kept calling tools: counted as not answered
        pass
    replies = [m for m in messages if isinstance(m, AIMessage)]
    answer = replies[-1].content if replies and not replies[-1].tool_calls else ""
    return {
        "question": question,
        "answer": answer,
        "right": tasks.is_right(answer, expected),
        "calls": [f"{c['name']}({c['args']})" for m in replies for c in m.tool_calls],
        "tool_calls": sum(len(m.tool_calls) for m in replies),
        "invalid_tool_calls": sum(len(m.invalid_tool_calls) for m in replies),
        "rejected_structure": sum(m.response_metadata.get("candidates_rejected_structure", 0)
                                  for m in replies),
        "budget_exhausted": any(m.response_metadata.get("budget_exhausted") for m in replies),
        "wall_s": time.monotonic() - started,
    }


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    args = parse(__doc__.splitlines()[0], argv)
    chat = ChatSpecs(**model_locations(args), max_steps=6, max_new_tokens=192)
    chat.warm_up()  # load and run the models first: that is no part of any step's budget
    agent = create_agent(chat, TOOLS, system_prompt=tasks.SYSTEM)
    rows = [run_task(agent, question, expected, tasks.STEP_BUDGET_S * args.scale)
            for question, expected in tasks.TASKS]
    return {"rows": rows, "summary": tasks.print_report(rows, "create_agent + ChatSpecs")}


if __name__ == "__main__":
    main()
