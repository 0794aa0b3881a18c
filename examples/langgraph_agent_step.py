"""A LangGraph agent whose reasoning step runs SPECS on a tight budget.

The "reason" node calls ChatSpecs with the graph's own config, so a budget set when the
graph is invoked (`configurable={"latency_budget_s": ...}`) reaches the model, while
LangGraph's keys (thread_id for the checkpointer) pass by untouched. The "check" node
retries once on a looser budget when the tight one ran out before a final answer.

    python examples/langgraph_agent_step.py
    python examples/langgraph_agent_step.py --models DRAFT TARGET REWARD --scale 0.1
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional, Sequence, TypedDict

from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import MemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _models import model_locations, parse  # noqa: E402

from specs_integrations.langchain import ChatSpecs  # noqa: E402

SYSTEM = "Reason step by step, one step per paragraph, and end with 'The answer is N'."


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    attempts: int


def build_graph(chat: ChatSpecs, retry_budget_s: float):
    """reason -> check -> (reason again on a looser budget | end)."""

    def reason(state: State, config: RunnableConfig) -> dict[str, Any]:
        # A bound setting wins over the graph's configurable one: the retry gets more time.
        model = chat.bind(latency_budget_s=retry_budget_s) if state["attempts"] else chat
        question = [m for m in state["messages"] if m.type == "human"]  # retry from scratch
        reply = model.invoke([SystemMessage(SYSTEM), *question], config)
        return {"messages": [reply], "attempts": state["attempts"] + 1}

    def check(state: State) -> str:
        meta = state["messages"][-1].response_metadata
        ran_out = meta["budget_exhausted"] and meta["answer"] is None
        return "reason" if ran_out and state["attempts"] < 2 else END

    graph = StateGraph(State)
    graph.add_node("reason", reason)
    graph.add_edge(START, "reason")
    graph.add_conditional_edges("reason", check, ["reason", END])
    return graph.compile(checkpointer=MemorySaver())


def main(argv: Optional[Sequence[str]] = None) -> list[dict[str, Any]]:
    args = parse(__doc__.splitlines()[0], argv)
    chat = ChatSpecs(**model_locations(args), max_steps=6, max_new_tokens=192)
    app = build_graph(chat, retry_budget_s=20.0 * args.scale)
    question = "Bob has 17 marbles, gives away 5 and then wins 8 more. How many does he have?"
    config = {"configurable": {"thread_id": "demo", "latency_budget_s": 3.0 * args.scale,
                               "n": 2, "beam_width": 2}}
    final = app.invoke({"messages": [HumanMessage(question)], "attempts": 0}, config)
    replies = [m for m in final["messages"] if m.type == "ai"]
    report = [{"text": m.content, **{k: m.response_metadata[k] for k in (
        "answer", "budget_exhausted", "wall_s", "steps_from_draft", "steps_from_target")}}
        for m in replies]
    for i, row in enumerate(report, 1):
        print(f"--- attempt {i}: {row}")
    return report


if __name__ == "__main__":
    main()
