"""Structural verification: is a candidate's tool call (or JSON reply) well formed?

A search can do what one sample cannot: check every candidate's tool call against the
tool's JSON schema before accepting it. The models answer in the Hermes / Qwen2.5 form

    <tool_call>
    {"name": "multiply", "arguments": {"a": 6, "b": 7}}
    </tool_call>

and StructureCheck.verdict judges a whole solution (the beam's steps plus the candidate):
"invalid" (a call that does not parse, names an unknown tool, fails the tool's schema, or
breaks tool_choice), "complete" (it holds valid calls or a valid JSON reply: the solution
ends here, the caller runs the tools) or "continue" (ordinary reasoning so far). The search
never accepts an invalid draft candidate (a round with none left defers to the target).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Sequence

from specs_engine.errors import ConfigError, MissingExtraError

Verdict = Literal["continue", "complete", "invalid"]
OPEN, CLOSE = "<tool_call>", "</tool_call>"
_CALL = re.compile(re.escape(OPEN) + r"(.*?)" + re.escape(CLOSE), re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_BARE = re.compile(r'\{\s*"name"\s*:')
ENDING = ("eos", "stop")
"""Finish reasons that end a solution (see models.Candidate.ends_solution)."""


def _validator(schema: Any, what: str) -> Any:
    """A JSON-schema validator, after checking the schema itself is valid."""
    try:
        import jsonschema
    except ImportError as exc:
        raise MissingExtraError("jsonschema", "langchain") from exc
    if not isinstance(schema, Mapping):
        raise ConfigError(f"{what} has schema {schema!r:.80}: a JSON schema must be a dict")
    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise ConfigError(f"{what} has an invalid JSON schema: {exc.message}") from None
    return cls(schema)


def _first_error(validator: Any, value: Any) -> Optional[str]:
    error = next(iter(validator.iter_errors(value)), None)
    if error is None:
        return None
    where = "/".join(map(str, error.absolute_path)) or "(top level)"
    return f"{where}: {error.message}"


@dataclass(frozen=True, eq=False)
class ToolSpec:
    """A tool the model may call: its name, what it does, and its arguments' JSON schema."""

    name: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"tool name={self.name!r} is not allowed: a non-empty string")
        object.__setattr__(self, "_validator", _validator(self.parameters, f"tool {self.name!r}"))

    @classmethod
    def from_openai(cls, tool: Mapping[str, Any]) -> ToolSpec:
        """From the OpenAI function form ({"type": "function", "function": {...}}), which
        LangChain's convert_to_openai_tool and LlamaIndex's to_openai_tool both produce."""
        function = tool.get("function", tool) if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise ConfigError(f"tool {tool!r:.80} is not an OpenAI function: it needs function.name")
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        return cls(function["name"], parameters, function.get("description") or "")

    def argument_error(self, arguments: Any) -> Optional[str]:
        """Why the arguments fail the schema, or None when they pass. Arguments the
        schema does not declare are refused unless it sets additionalProperties (as
        OpenAI's strict mode does): a model that invents them has misread the tool."""
        if not isinstance(arguments, dict):
            return f"arguments must be a JSON object, got {type(arguments).__name__}"
        declared = self.parameters.get("properties")
        if isinstance(declared, Mapping) and "additionalProperties" not in self.parameters:
            extra = sorted(set(arguments) - set(declared))
            if extra:
                return f"undeclared argument(s) {extra}; {self.name!r} takes {sorted(declared)}"
        return _first_error(self._validator, arguments)  # type: ignore[attr-defined]

    def as_json(self) -> dict[str, Any]:
        """The OpenAI function form the Qwen2.5 / Hermes tool prompt lists."""
        return {"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": dict(self.parameters)}}


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class InvalidToolCall:
    text: str
    """The raw text between the tags."""
    error: str
    name: Optional[str] = None


@dataclass(frozen=True)
class ParsedReply:
    """A reply split into its text and its tool calls."""

    content: str
    """The text outside the <tool_call> blocks (and before an unclosed one)."""
    calls: tuple[ToolCall, ...] = ()
    invalid: tuple[InvalidToolCall, ...] = ()
    pending: bool = False
    """An opened <tool_call> (or bare call object) that is not closed yet."""
    pending_text: str = ""
    """The unclosed call's text, from its opening."""


def parse_tool_calls(text: str, tools: Sequence[ToolSpec]) -> ParsedReply:
    """Every <tool_call> block of text, each checked against the bound tools.

    Without tags, a reply that ends with one {"name": ..., "arguments": ...} object (or is
    one, in a ```json fence) holds that call: small Qwen2.5 models often drop the tags (the
    real 0.5B/1.5B Coder models did on the examples' tasks). An object opened and not
    closed is pending, like an unclosed <tool_call>."""
    by_name: dict[str, list[ToolSpec]] = {}
    for tool in tools:  # a name bound twice (a class and its schema): either schema may pass
        by_name.setdefault(tool.name, []).append(tool)
    bodies = [m.group(1) for m in _CALL.finditer(text)]
    bare = None if bodies or OPEN in text else _bare_call(text)
    if bare is not None:
        content, body = bare
        if not body:
            return ParsedReply(content, pending=True, pending_text=text[len(content):])
        bodies = [body]
    calls, invalid = [], []
    for body in bodies:
        call = _parse_one(body, by_name)
        (invalid if isinstance(call, InvalidToolCall) else calls).append(call)
    if bare is not None:
        return ParsedReply(bare[0], tuple(calls), tuple(invalid))
    rest = _CALL.sub("", text)
    content, opened, unclosed = rest.partition(OPEN)
    return ParsedReply(content, tuple(calls), tuple(invalid), bool(opened), opened + unclosed)


def bare_call_start(text: str) -> int:
    """Where a tag-less call object may begin in text (len(text) if nowhere): streaming
    holds text back from there until the reply is complete."""
    if text.lstrip().startswith(("{", "```")):
        return 0
    match = _BARE.search(text)
    return match.start() if match else len(text)


def _bare_call(text: str) -> Optional[tuple[str, str]]:
    """(the text before a tag-less call, the call's JSON) when text ends with a call
    object; (text before it, "") when the object is not finished; None otherwise."""
    try:
        whole = parse_json_reply(text)
    except ValueError:
        whole = None
    else:
        return ("", json.dumps(whole)) if _names_a_call(whole) else None
    starts = [m.start() for m in _BARE.finditer(text)]
    if not starts:
        return ("", "") if text.lstrip().startswith(("{", "```")) else None
    tail = text[starts[-1]:]
    try:
        data, end = json.JSONDecoder().raw_decode(tail)
    except ValueError:
        return text[: starts[-1]], ""
    if tail[end:].strip().strip("`").strip() or not _names_a_call(data):
        return None  # prose goes on after it, or it is no call: plain text
    return text[: starts[-1]], json.dumps(data)


def _names_a_call(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("name"), str) and "arguments" in data


def _parse_one(body: str, tools: Mapping[str, list[ToolSpec]]) -> ToolCall | InvalidToolCall:
    raw = body.strip()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return InvalidToolCall(raw, f"not JSON: {exc.msg} at char {exc.pos}")
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return InvalidToolCall(raw, 'a call must be {"name": ..., "arguments": {...}}')
    name, arguments = data["name"], data.get("arguments", {})
    if isinstance(arguments, str):  # some models double-encode the arguments
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass
    if name not in tools:
        return InvalidToolCall(raw, f"unknown tool {name!r}; bound tools: {', '.join(tools) or 'none'}", name)
    errors = [tool.argument_error(arguments) for tool in tools[name]]
    if None not in errors:
        return InvalidToolCall(raw, f"arguments fail the schema of {name!r}: {errors[0]}", name)
    return ToolCall(name, arguments)


def parse_json_reply(text: str) -> Any:
    """The JSON value of a bare JSON reply (a ```json fence is allowed); ValueError if none."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    return json.loads(fenced.group(1) if fenced else stripped)


@dataclass(frozen=True, eq=False)
class StructureCheck:
    """What a well-formed answer looks like: tool calls (tools + tool_choice) or a bare
    JSON reply (json_reply, optionally matching json_schema). One of the two per call.

    tool_choice: "auto" (call a tool or answer in text), "any" (must call one),
    "none" (must not call any) or a bound tool's name (must call that one).
    """

    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str = "auto"
    json_reply: bool = False
    json_schema: Optional[Mapping[str, Any]] = None

    def __post_init__(self) -> None:
        names = list(dict.fromkeys(tool.name for tool in self.tools))
        if self.tool_choice not in ("auto", "any", "none", *names):
            raise ConfigError(
                f"tool_choice={self.tool_choice!r} is not allowed: use 'auto', 'any', 'none' or a "
                f"bound tool's name (bound: {', '.join(names) or 'none'})"
            )
        if self.tools and self.json_reply:
            raise ConfigError("a StructureCheck takes tools or json_reply=True, not both")
        if self.tool_choice == "any" and not self.tools:
            raise ConfigError("tool_choice='any' needs at least one bound tool")
        schema = self.json_schema
        validator = None if schema is None else _validator(schema, "json_schema")
        object.__setattr__(self, "_json_validator", validator)

    @property
    def required_tool(self) -> bool:
        """Whether every answer must call a tool."""
        return self.tool_choice not in ("auto", "none")

    def verdict(self, text: str, finish_reason: str) -> Verdict:
        """Judges a whole solution so far; finish_reason is how its last step ended."""
        if self.json_reply:
            return self._json_verdict(text, finish_reason)
        reply = parse_tool_calls(text, self.tools)
        if self.tool_choice == "none" and (reply.calls or reply.invalid or reply.pending):
            return "invalid"
        if reply.invalid:
            return "invalid"
        if reply.pending:  # a call cut by the step's token limit may still close
            return "continue" if finish_reason == "length" else "invalid"
        if reply.calls:
            named = self.tool_choice not in ("auto", "any")
            wrong = named and any(call.name != self.tool_choice for call in reply.calls)
            return "invalid" if wrong else "complete"
        ends = finish_reason in ENDING
        return "invalid" if ends and self.required_tool else "continue"

    def _json_verdict(self, text: str, finish_reason: str) -> Verdict:
        try:
            value = parse_json_reply(text)
        except ValueError:
            return "invalid" if finish_reason in ENDING else "continue"
        if self.json_error(value) is not None:
            return "invalid"
        return "complete"

    def json_error(self, value: Any) -> Optional[str]:
        """Why a JSON reply fails the check, or None when it passes."""
        if not isinstance(value, dict):
            return f"the reply must be a JSON object, got {type(value).__name__}"
        validator = self._json_validator  # type: ignore[attr-defined]
        return None if validator is None else _first_error(validator, value)
