"""Tools and structured output for both integrations: what a call binds, how its prompt
is written, and how its answer is read back.

LangChain and LlamaIndex both describe tools in the OpenAI function form, so one
ToolBinding serves both: it holds the engine's StructureCheck (the search rejects
candidates that fail it) and the system-prompt text that lists the tools (see
specs_engine.tool_prompt for the rendering and why it is ours, not the template's).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional, Sequence

from specs_engine.errors import ConfigError
from specs_engine.tool_calls import (
    OPEN,
    InvalidToolCall,
    ParsedReply,
    StructureCheck,
    ToolCall,
    ToolSpec,
    bare_call_start,
    parse_tool_calls,
)
from specs_engine.tool_prompt import json_section, render_messages, tools_section

UNCLOSED = "the answer ended inside an unclosed <tool_call> (the budget cut it)"


def tool_choice_name(choice: Any, names: Sequence[str]) -> str:
    """LangChain / OpenAI spellings of tool_choice as auto | any | none | a tool's name."""
    if choice is None or choice == "auto":
        return "auto"
    if choice is True or choice in ("any", "required"):
        return "any"
    if choice is False or choice == "none":
        return "none"
    if isinstance(choice, Mapping):  # {"type": "function", "function": {"name": ...}}
        choice = (choice.get("function") or choice).get("name")
    if isinstance(choice, str) and choice in names:
        return choice
    raise ConfigError(
        f"tool_choice={choice!r} is not allowed: use 'auto', 'any' (or 'required'), 'none' or "
        f"a bound tool's name (bound: {', '.join(names) or 'none'})"
    )


def tool_specs(openai_tools: Sequence[Mapping[str, Any]]) -> tuple[ToolSpec, ...]:
    return tuple(ToolSpec.from_openai(tool) for tool in openai_tools)


@dataclass(frozen=True)
class ToolBinding:
    """The structure one call must have: its check and its system-prompt text."""

    check: StructureCheck
    system_extra: str

    @classmethod
    def for_tools(cls, openai_tools: Sequence[Mapping[str, Any]], tool_choice: Any = None) -> ToolBinding:
        tools = tool_specs(openai_tools)
        choice = tool_choice_name(tool_choice, [t.name for t in tools])
        return cls(StructureCheck(tools, choice), tools_section(tools, choice))

    @classmethod
    def for_json(cls, schema: Optional[Mapping[str, Any]] = None) -> ToolBinding:
        return cls(StructureCheck(json_reply=True, json_schema=schema), json_section(schema))

    @staticmethod
    def plain(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
        """Messages of a call with no tools bound (earlier tool turns still written out)."""
        return render_messages(messages)

    @property
    def tools(self) -> tuple[ToolSpec, ...]:
        return self.check.tools

    def prompt(self, messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
        return render_messages(messages, self.system_extra)

    def parse(self, text: str) -> ParsedReply:
        return parse_tool_calls(text, self.tools)

    def streamable(self, text: str) -> str:
        """The part of a reply so far that can stream as text: what precedes its first
        <tool_call> and before where a tag-less call object may begin (held back until
        the reply is complete): nothing streamed is ever taken back."""
        if not self.tools:
            return text
        return text.split(OPEN)[0][: bare_call_start(text)]

    def checked(self, text: str) -> ParsedReply:
        """The reply's calls; when the answer breaks tool_choice (a call under "none", the
        wrong tool under a named choice), its calls are all invalid, never returned as
        calls to run."""
        reply = self.parse(text)
        if not reply.calls or self.valid(text):
            return reply
        broken = tuple(InvalidToolCall(json.dumps({"name": c.name, "arguments": c.arguments}),
                                       f"breaks tool_choice={self.check.tool_choice!r}", c.name)
                       for c in reply.calls)
        return replace(reply, calls=(), invalid=reply.invalid + broken)

    def read(self, text: str) -> tuple[str, tuple[ToolCall, ...], tuple[InvalidToolCall, ...]]:
        """A finished reply as both integrations return it: its text outside the calls, the
        calls to run, and the invalid ones, an unclosed call (cut by the budget) among them."""
        reply = self.checked(text)
        invalid = reply.invalid + ((InvalidToolCall(reply.pending_text, UNCLOSED),) if reply.pending else ())
        return reply.content, reply.calls, invalid

    def valid(self, text: str) -> bool:
        """Whether a finished answer has the required structure."""
        return self.check.verdict(text, "eos") != "invalid"


def call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"
