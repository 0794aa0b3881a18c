"""Scripted models that act like a tool-using agent model: a call first, an answer once a
tool result is in the prompt. The framework objects around them (LangGraph, LangChain
agents, LlamaIndex FunctionAgent) are real; only the model's text is scripted."""

from __future__ import annotations

import json
from typing import Callable, Sequence

from tests.helpers.fakes import RecordingEngine
from tests.helpers.scripted import PROMPT_END, ScriptedLM, ScriptedReward


def call_text(name: str, arguments: dict) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


class AgentLM(ScriptedLM):
    """script_for(prompt_text) gives the steps to write, one per round (the last repeats),
    chosen from the whole rendered prompt."""

    def __init__(self, name: str, script_for: Callable[[str], Sequence[str]], **kwargs):
        super().__init__(name, lambda i: [], **kwargs)
        self.script_for = script_for

    def _candidate(self, prefix, j, rng, params):
        steps = list(self.script_for("".join(map(chr, prefix)).rpartition(PROMPT_END)[0]))
        self.menu = lambda i: [steps[min(i, len(steps) - 1)]]
        return super()._candidate(prefix, j, rng, params)


def _script(call: str | Sequence[str], answer: str) -> Callable[[str], Sequence[str]]:
    steps = [call] if isinstance(call, str) else list(call)
    return lambda prompt: [answer] if "<tool_response>" in prompt else steps


def agent_engine(call: str | Sequence[str], answer: str,
                 draft_call: str | Sequence[str] | None = None) -> RecordingEngine:
    """Target: the steps of `call` until a <tool_response> is in the prompt, then `answer`.
    The draft writes draft_call (e.g. a malformed call) when given, else the same."""
    target = AgentLM("agent-target", _script(call, answer), default_logprob=-0.1)
    draft = AgentLM("agent-draft", _script(draft_call or call, answer), default_logprob=-0.1)
    return RecordingEngine(draft, target, ScriptedReward(0.9))
