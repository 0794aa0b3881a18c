"""ChatSpecs: SPECS as a LangChain chat model."""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Callable, ClassVar, Iterator, Optional, Sequence

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ChatMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import ConfigDict

from specs_engine.errors import ConfigError
from specs_engine.result import Event, FinalEvent, SearchResult
from specs_engine.tool_calls import StructureCheck
from specs_integrations._settings import (
    StreamedSteps,
    result_info,
    step_info,
    token_usage,
)
from specs_integrations._tools import ToolBinding
from specs_integrations.langchain._settings import SpecsLangChainBase
from specs_integrations.langchain.tools import (
    BINDING_KWARGS,
    call_binding,
    openai_tool,
    reply_fields,
    structure_metadata,
    structured_output,
    tool_call_dicts,
)

ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
"""LangChain message types -> chat-template roles."""


class ChatSpecs(SpecsLangChainBase, BaseChatModel):
    """Latency-bounded step-level search (draft proposes, target and reward verify) as a
    chat model; messages go through the models' chat template.

    Example:
        ```python
        from specs_integrations.langchain import ChatSpecs

        chat = ChatSpecs(preset="qwen2.5-coder", latency_budget_s=10.0, max_steps=8)
        reply = chat.invoke([("system", "Reason step by step."), ("human", "What is 12 * 7?")],
                            config={"configurable": {"latency_budget_s": 3.0}})
        reply.response_metadata["budget_exhausted"], reply.usage_metadata
        for chunk in chat.stream("What is 12 * 7?"):   # one chunk per accepted step
            print(chunk.content, end="")
        ```

    Each call has its own budget; when it runs out the reply is the best answer so far
    with response_metadata["budget_exhausted"] = True (an error only with
    strict_budget=True).

    Tools and structured output: `bind_tools(tools, tool_choice=...)` and
    `with_structured_output(schema, method=...)` constrain the search itself. A candidate
    whose tool call does not parse, names an unknown tool, fails the tool's JSON schema or
    breaks tool_choice is never accepted (counted in candidates_rejected_structure); a
    draft round left without a valid one defers to the target; a step holding a valid
    call ends the answer, which carries it in `tool_calls`. Tools are written into the
    system message in the Hermes / Qwen2.5 form for every chat template
    (specs_engine.tool_prompt). Text only: no images.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())
    _ls_model_type: ClassVar[str] = "chat"

    streaming: bool = False
    """invoke() streams internally, so callbacks get one token event per step."""

    @property
    def _llm_type(self) -> str:
        return "specs-chat"

    # ---- tools and structured output -----------------------------------------------

    def bind_tools(self, tools: Sequence[dict[str, Any] | type | Callable | BaseTool], *,
                   tool_choice: Optional[Any] = None, strict: Optional[bool] = None,
                   parallel_tool_calls: Optional[bool] = None,
                   **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        """Tools the model may call: a tool whose schema cannot be converted, or a
        tool_choice naming no bound tool, fails here. tool_choice: "auto" (default),
        "any"/"required", "none" or a tool's name. `strict` and `parallel_tool_calls` are
        accepted for compatibility: every call is always checked against its schema, and
        several calls in one answer are allowed."""
        formatted = [openai_tool(tool) for tool in tools]
        ToolBinding.for_tools(formatted, tool_choice)
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def with_structured_output(self, schema: Optional[Any] = None, *,
                               method: str = "function_calling", include_raw: bool = False,
                               strict: Optional[bool] = None, **kwargs: Any) -> Runnable:
        """Answers as `schema` (a pydantic class, a TypedDict or a JSON-schema dict).
        function_calling: the answer is a call of one tool named after the schema;
        json_schema: a bare JSON reply matching the schema; json_mode: a bare JSON object
        (checked against the schema when one is given). Either way the search rejects
        candidates that fail the schema."""
        if kwargs:
            raise ConfigError(f"with_structured_output got unknown arguments {sorted(kwargs)}")
        return structured_output(self, schema, method, include_raw)

    def get_num_tokens_from_messages(self, messages: list[BaseMessage],
                                     tools: Optional[Sequence[Any]] = None) -> int:
        """Tokens of the messages as the target reads them: through its chat template,
        with the tools listed as a call would list them."""
        kwargs = {"tools": [openai_tool(t) for t in tools]} if tools else {}
        return self.prompt_token_count(self._prompt(messages, kwargs))

    def _prompt(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> list[dict[str, str]]:
        """The chat-template messages of a call: tool turns written out, tools listed."""
        return self._bound(messages, kwargs)[0]

    def _bound(self, messages: list[BaseMessage], kwargs: dict[str, Any],
               ) -> tuple[list[dict[str, str]], dict[str, Any], Optional[ToolBinding]]:
        """A call's prompt, its other settings and its tool binding, read once per call
        (reading it builds the tools' JSON-schema validators): the prompt lists the
        tools, the search enforces them and the reply is read by them."""
        binding = call_binding(kwargs)
        prompt = to_chat_prompt(messages)
        prompt = binding.prompt(prompt) if binding else ToolBinding.plain(prompt)
        return prompt, {k: v for k, v in kwargs.items() if k not in BINDING_KWARGS}, binding

    # ---- the calls ---------------------------------------------------------------

    def _generate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                  run_manager: Optional[CallbackManagerForLLMRun] = None,
                  **kwargs: Any) -> ChatResult:
        prompt, settings, binding = self._bound(messages, kwargs)
        result = self._search(prompt, stop, settings, _structure(binding))
        return self._chat_result(result, binding)

    async def _agenerate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                         run_manager: Optional[AsyncCallbackManagerForLLMRun] = None,
                         **kwargs: Any) -> ChatResult:
        prompt, settings, binding = self._bound(messages, kwargs)
        result = await self._asearch(prompt, stop, settings, _structure(binding))
        return self._chat_result(result, binding)

    def _stream(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                run_manager: Optional[CallbackManagerForLLMRun] = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        prompt, settings, binding = self._bound(messages, kwargs)
        to_chunk = MessageChunks(self.model_name(), binding)
        for event in self._events(prompt, stop, settings, _structure(binding)):
            chunk = to_chunk(event)
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                       run_manager: Optional[AsyncCallbackManagerForLLMRun] = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        prompt, settings, binding = self._bound(messages, kwargs)
        to_chunk = MessageChunks(self.model_name(), binding)
        async for event in self._aevents(prompt, stop, settings, _structure(binding)):
            chunk = to_chunk(event)
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def _chat_result(self, result: SearchResult, binding: Optional[ToolBinding]) -> ChatResult:
        metadata = {**final_metadata(result, self.model_name(), binding),
                    "steps": [step_info(s) for s in result.steps]}
        message = AIMessage(**reply_fields(result.text, binding),
                            usage_metadata=usage_metadata(result), response_metadata=metadata)
        return ChatResult(
            generations=[ChatGeneration(message=message)],
            llm_output={"token_usage": token_usage(result), "model_name": self.model_name()},
        )


def _structure(binding: Optional[ToolBinding]) -> Optional[StructureCheck]:
    return None if binding is None else binding.check


class MessageChunks:
    """Turns one call's events into message chunks: one per streamed step, then a last
    chunk with the unstreamed rest, usage and stats (see llms.StepChunks).

    With tools bound, a step's text streams as content up to its first <tool_call> (or
    not at all while it may be a bare call object); the calls arrive on the last chunk as tool_call_chunks (their args as JSON text).
    Calls that parse but fail their schema cannot be told apart from valid ones in
    LangChain's chunk form, so the last chunk lists them in
    response_metadata["invalid_tool_calls"] instead (invoke() returns them as
    AIMessage.invalid_tool_calls)."""

    def __init__(self, model_name: str, binding: Optional[ToolBinding] = None) -> None:
        self.model_name, self.binding = model_name, binding
        self.sent = StreamedSteps()
        self.text = self.content = ""

    def __call__(self, event: Event) -> ChatGenerationChunk:
        if not isinstance(event, FinalEvent):
            step = step_info(self.sent.add(event))
            return ChatGenerationChunk(message=AIMessageChunk(
                content=self._content_delta(step["text"]), response_metadata={"steps": [step]}))
        result = event.result
        metadata = {**final_metadata(result, self.model_name, self.binding),
                    "steps": [step_info(s) for s in self.sent.rest(result)]}
        fields = reply_fields(result.text, self.binding)
        calls = fields.pop("tool_calls", [])
        if invalid := fields.pop("invalid_tool_calls", []):
            metadata["invalid_tool_calls"] = invalid
        return ChatGenerationChunk(message=AIMessageChunk(
            content=fields["content"][len(self.content):], usage_metadata=usage_metadata(result),
            tool_call_chunks=[{"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"],
                               "index": i, "type": "tool_call_chunk"} for i, c in enumerate(calls)],
            response_metadata=metadata, chunk_position="last"))

    def _content_delta(self, text: str) -> str:
        """The new text that can stream (see ToolBinding.streamable)."""
        self.text += text
        content = self.binding.streamable(self.text) if self.binding else self.text
        delta, self.content = content[len(self.content):], content
        return delta


def to_chat_prompt(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as {"role", "content"} dicts (plus an AI turn's "tool_calls"),
    before tool turns are written out for the chat template (ToolBinding.prompt)."""
    prompt = []
    for message in messages:
        role = message.role if isinstance(message, ChatMessage) else ROLES.get(message.type)
        if role is None:
            raise ConfigError(
                f"message type {message.type!r} is not supported: use system, human, ai, "
                "tool or ChatMessage messages"
            )
        if not isinstance(message.content, str) and any(
            not isinstance(block, str) and block.get("type") != "text" for block in message.content
        ):
            raise ConfigError(
                "message content holds a non-text block: ChatSpecs takes text only (no images, "
                "audio or files)"
            )
        entry: dict[str, Any] = {"role": role, "content": message.text}
        if isinstance(message, AIMessage) and message.tool_calls:
            entry["tool_calls"] = tool_call_dicts(message.tool_calls)
        prompt.append(entry)
    return prompt


def usage_metadata(result: SearchResult) -> UsageMetadata:
    usage = token_usage(result)
    return UsageMetadata(input_tokens=usage["prompt_tokens"],
                         output_tokens=usage["completion_tokens"],
                         total_tokens=usage["total_tokens"])


def final_metadata(result: SearchResult, model_name: str,
                   binding: Optional[ToolBinding] = None) -> dict[str, Any]:
    """What a reply says about itself: model, why it ended, answer, time split, and
    whether it has the bound structure (structure_valid)."""
    return {"model_name": model_name, "model_provider": "specs",
            "finish_reason": "stop" if result.finished else result.stop_reason,
            **result_info(result), **structure_metadata(result.text, binding)}
