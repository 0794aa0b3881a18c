"""Tools and JSON replies written into chat messages that any chat template can render.

The rendering is the Hermes / Qwen2.5 one, done here rather than by the template's
`tools=` argument, so it works on every backend (local tokenizer, vLLM, a remote server)
and on templates that know nothing of tools (the documented fallback: never a silent
drop). For a Qwen2.5 template and a conversation that opens with a system message, the
text is the one the template itself renders with `tools=` (a test checks this against the
real Qwen2.5-Coder template):

- the tools are listed as JSON in the system message, with the <tool_call> answer format;
- an assistant turn's tool calls become `<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>`;
- tool results become one user turn of `<tool_response>` blocks.

tool_choice other than "auto" adds one sentence saying what is required; the search
enforces it too (StructureCheck), the sentence only makes valid candidates likelier.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Sequence

from specs_engine.errors import ConfigError
from specs_engine.tool_calls import ToolSpec

Message = Mapping[str, Any]
"""{"role", "content"} plus, on assistant turns, optional "tool_calls": [{"name", "arguments"}]."""

TOOLS_HEADER = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_FOOTER = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
DEFAULT_SYSTEM = "You are a helpful assistant."


def tools_section(tools: Sequence[ToolSpec], tool_choice: str = "auto") -> str:
    """The system-prompt text that lists the tools and the answer format."""
    if tool_choice == "none":
        return "Do not call any function: answer the user directly in text."
    listed = "".join("\n" + json.dumps(tool.as_json(), ensure_ascii=False) for tool in tools)
    section = TOOLS_HEADER + listed + TOOLS_FOOTER
    if tool_choice == "any":
        section += "\n\nYou must call at least one of these functions."
    elif tool_choice != "auto":
        section += f"\n\nYou must call the function {tool_choice!r}."
    return section


def json_section(schema: Optional[Mapping[str, Any]]) -> str:
    """The system-prompt text asking for a bare JSON reply (matching schema, if given)."""
    if schema is None:
        return "Reply with a single JSON object and nothing else."
    return ("Reply with a single JSON object and nothing else. It must match this JSON "
            f"schema:\n{json.dumps(dict(schema), ensure_ascii=False)}")


def render_messages(messages: Sequence[Message], system_extra: Optional[str] = None) -> list[dict[str, str]]:
    """Plain {"role", "content"} messages: tool calls and results written out as text,
    system_extra (tools_section or json_section) appended to the system message."""
    rendered: list[dict[str, str]] = []
    for message in messages:
        role = message["role"]
        if role == "tool":
            block = f"<tool_response>\n{message['content']}\n</tool_response>"
            if rendered and rendered[-1].get("_tool"):
                rendered[-1]["content"] += "\n" + block
            else:
                rendered.append({"role": "user", "content": block, "_tool": "1"})
            continue
        content = message["content"]
        if role == "assistant" and message.get("tool_calls"):
            content = "\n".join(([content] if content else []) + [_call_text(c) for c in message["tool_calls"]])
        rendered.append({"role": role, "content": content})
    rendered = [{"role": m["role"], "content": m["content"]} for m in rendered]
    if system_extra:
        if rendered and rendered[0]["role"] == "system":
            rendered[0]["content"] += "\n\n" + system_extra
        else:
            rendered.insert(0, {"role": "system", "content": f"{DEFAULT_SYSTEM}\n\n{system_extra}"})
    return rendered


def _call_text(call: Mapping[str, Any]) -> str:
    """One tool call as the model writes it (the Qwen2.5 template's own spacing)."""
    if not isinstance(call.get("name"), str):
        raise ConfigError(f"tool call {dict(call)!r:.80} has no name: a call needs 'name' and 'arguments'")
    arguments = json.dumps(call.get("arguments") or {}, ensure_ascii=False)
    return f'<tool_call>\n{{"name": "{call["name"]}", "arguments": {arguments}}}\n</tool_call>'
