"""ChatSpecs' tools and structured output: binding, and reading calls back as messages.

`bind_tools` binds `tools` (OpenAI function dicts, made by langchain-core's own
convert_to_openai_tool) and `tool_choice`; `with_structured_output` binds either one
tool (function_calling) or a `response_format` (json_schema, json_mode). Each call turns
what is bound into a ToolBinding: the search then never accepts a candidate whose call
or JSON fails the schema (see specs_engine.tool_calls).
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Mapping, Optional, Sequence

from langchain_core.messages.tool import InvalidToolCall, ToolCall
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass

from specs_engine.errors import ConfigError
from specs_integrations._tools import ToolBinding, call_id

BINDING_KWARGS = ("tools", "tool_choice", "response_format")
"""Call kwargs that carry what bind_tools / with_structured_output bound (not settings)."""
METHODS = ("function_calling", "json_schema", "json_mode")


def openai_tool(tool: Any) -> dict[str, Any]:
    """A tool in the OpenAI function form; an error naming the tool when it cannot be."""
    try:
        return convert_to_openai_tool(tool)
    except Exception as exc:  # re-raised naming the tool: the converter's own errors do not
        name = (tool if isinstance(tool, str) else getattr(tool, "name", None)
                or getattr(tool, "__name__", None) or repr(tool)[:60])
        raise ConfigError(f"tool {name!r} cannot be converted to a JSON schema: {exc}") from exc


def call_binding(kwargs: Mapping[str, Any]) -> Optional[ToolBinding]:
    """What a call's kwargs bind: tools (with tool_choice), a JSON reply, or nothing."""
    if kwargs.get("tools"):
        return ToolBinding.for_tools(kwargs["tools"], kwargs.get("tool_choice"))
    response_format = kwargs.get("response_format")
    if response_format is not None:  # ours, or OpenAI's {"json_schema": {"schema": ...}}
        nested = response_format.get("json_schema") or {}
        return ToolBinding.for_json(response_format.get("schema") or nested.get("schema"))
    return None


def reply_fields(text: str, binding: Optional[ToolBinding]) -> dict[str, Any]:
    """An AIMessage's content, tool_calls and invalid_tool_calls for a reply's text."""
    if binding is None or not binding.tools:
        return {"content": text}
    content, calls, invalid = binding.read(text)
    return {"content": content,
            "tool_calls": [ToolCall(name=c.name, args=c.arguments, id=call_id(), type="tool_call")
                           for c in calls],
            "invalid_tool_calls": [InvalidToolCall(name=c.name, args=c.text, id=call_id(), error=c.error,
                                                   type="invalid_tool_call") for c in invalid]}


def structure_metadata(text: str, binding: Optional[ToolBinding]) -> dict[str, Any]:
    """response_metadata keys saying whether the reply has the bound structure."""
    if binding is None:
        return {}
    calls = bool(binding.tools and binding.checked(text).calls)
    return {"structure_valid": binding.valid(text), **({"finish_reason": "tool_calls"} if calls else {})}


def structured_output(chat: Any, schema: Any, method: str, include_raw: bool) -> Runnable:
    """with_structured_output for ChatSpecs: the schema constrains the search itself."""
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is not allowed: use one of {', '.join(METHODS)}")
    pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
    if schema is None and method != "json_mode":
        raise ConfigError(f"schema=None is only allowed with method='json_mode', not {method!r}")
    traced = {"ls_structured_output_format": {"kwargs": {"method": method}, "schema": schema}}
    if method == "function_calling":
        name = openai_tool(schema)["function"]["name"]
        llm = chat.bind_tools([schema], tool_choice=name, **traced)
        parser: Runnable = (PydanticToolsParser(tools=[schema], first_tool_only=True) if pydantic
                            else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True))
    else:
        json_schema = None if schema is None else convert_to_json_schema(schema)
        llm = chat.bind(response_format={"type": method, "schema": json_schema}, **traced)
        parser = PydanticOutputParser(pydantic_object=schema) if pydantic else JsonOutputParser()
    if not include_raw:
        return llm | parser
    parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
    fallback = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")


def tool_call_dicts(calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """An AIMessage's tool_calls as the {"name", "arguments"} the prompt renders."""
    return [{"name": c["name"], "arguments": c.get("args") or {}} for c in calls]
