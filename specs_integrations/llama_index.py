"""SpecsLLM for LlamaIndex: SPECS as a CustomLLM for query engines, chat engines and agents.

Query engines and agents pass no per-call settings, so budgets live on the instance;
`with_budget(...)` makes a cheap copy that shares the loaded models.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Callable, Iterator, Optional, Sequence, Union

try:
    from llama_index.core.base.llms.types import (
        ChatMessage,
        ChatResponse,
        ChatResponseAsyncGen,
        ChatResponseGen,
        CompletionResponse,
        CompletionResponseAsyncGen,
        CompletionResponseGen,
        LLMMetadata,
    )
    from llama_index.core.base.llms.generic_utils import (
        astream_completion_response_to_chat_response,
        completion_response_to_chat_response,
        stream_completion_response_to_chat_response,
    )
    from llama_index.core.llms import CustomLLM
    from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
    from llama_index.core.llms.function_calling import FunctionCallingLLM
    from llama_index.core.llms.llm import ToolSelection
except ImportError:  # pragma: no cover - depends on the environment
    from specs_engine.errors import MissingExtraError

    raise MissingExtraError("llama-index-core", "llama-index") from None
from pydantic import ConfigDict

from specs_engine.config import Budget
from specs_engine.errors import ConfigError
from specs_engine.models import Prompt
from specs_engine.result import Event, FinalEvent, SearchResult
from specs_integrations._tools import ToolBinding, call_id
from specs_integrations._settings import (
    CallPlan,
    SpecsFields,
    StreamedSteps,
    check_budget,
    plan_call,
    result_info,
    step_info,
    token_usage,
)


BINDING_KWARGS = ("tools", "tool_choice")
"""Chat kwargs that carry the tools a FunctionCallingLLM call binds (not settings)."""


class SpecsLLM(SpecsFields, CustomLLM, FunctionCallingLLM):
    """Latency-bounded step-level search (draft proposes, target and reward verify).

    Example:
        ```python
        from llama_index.core import VectorStoreIndex
        from specs_integrations.llama_index import SpecsLLM

        llm = SpecsLLM(preset="qwen2.5-coder", latency_budget_s=10.0)   # or engine=...
        index.as_query_engine(llm=llm, streaming=True).query("...")
        llm.with_budget(latency_budget_s=2.0).complete("What is 12 * 7?")
        ```

    Each call has its own budget; when it runs out the response is the best answer so far
    with raw["budget_exhausted"] = True (an error only with strict_budget=True).
    raw["usage"] holds prompt/completion tokens, the rest of raw the answer, the time
    split and the steps each model wrote.

    A FunctionCallingLLM: FunctionAgent, AgentWorkflow, predict_and_call and
    structured_predict work. Tool calls are checked inside the search (a candidate whose
    call fails the tool's schema is never accepted; see ChatSpecs) and come back in
    message.additional_kwargs["tool_calls"] (malformed ones, only ever under a budget
    cut or when no candidate passed, in ["invalid_tool_calls"], with raw["structure_valid"]
    False).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())

    is_chat_model: bool = True
    """LlamaIndex then sends its prompts as chat messages, which reach the models through
    their own chat template; False sends flat text (for models without a template)."""

    @classmethod
    def class_name(cls) -> str:
        return "specs_llm"

    @property
    def metadata(self) -> LLMMetadata:
        """The real context window of the loaded models (this loads them if needed)."""
        return LLMMetadata(
            context_window=self.get_engine().context_window,
            num_output=self.max_new_tokens or Budget().max_new_tokens,
            model_name=self.model_name(),
            is_chat_model=self.is_chat_model,
            is_function_calling_model=True,
        )

    def with_budget(self, **settings: Any) -> SpecsLLM:
        """A copy with other settings (e.g. latency_budget_s=2.0) that shares the models."""
        return self.with_settings(**settings)

    # ---- completion ---------------------------------------------------------------------

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self._complete(self._text_prompt(prompt, formatted), kwargs)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False,
                        **kwargs: Any) -> CompletionResponseGen:
        return self._stream(self._text_prompt(prompt, formatted), kwargs)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False,
                        **kwargs: Any) -> CompletionResponse:
        return await self._acomplete(self._text_prompt(prompt, formatted), kwargs)

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False,
                               **kwargs: Any) -> CompletionResponseAsyncGen:
        return self._astream(self._text_prompt(prompt, formatted), kwargs)

    # ---- chat: messages go through the models' chat template ------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return completion_response_to_chat_response(self._complete(chat_prompt(messages), kwargs))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return stream_completion_response_to_chat_response(
            self._stream(chat_prompt(messages), kwargs))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        response = await self._acomplete(chat_prompt(messages), kwargs)
        return completion_response_to_chat_response(response)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage],
                           **kwargs: Any) -> ChatResponseAsyncGen:
        return astream_completion_response_to_chat_response(
            self._astream(chat_prompt(messages), kwargs))

    # ---- function calling -----------------------------------------------------------------

    def _prepare_chat_with_tools(
        self, tools: Sequence[Any], user_msg: Optional[Union[str, ChatMessage]] = None,
        chat_history: Optional[list[ChatMessage]] = None, verbose: bool = False,
        allow_parallel_tool_calls: bool = False, tool_required: bool = False, **kwargs: Any,
    ) -> dict[str, Any]:
        """chat() kwargs binding the tools; tool_required means tool_choice "any"."""
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(ChatMessage(role="user", content=user_msg)
                            if isinstance(user_msg, str) else user_msg)
        specs = [tool.metadata.to_openai_tool() for tool in tools]
        choice = "any" if tool_required else kwargs.pop("tool_choice", None)
        if specs:
            ToolBinding.for_tools(specs, choice)  # a bad tool or tool_choice fails here
        return {"messages": messages, "tools": specs or None, "tool_choice": choice, **kwargs}

    def get_tool_calls_from_response(self, response: ChatResponse,
                                     error_on_no_tool_call: bool = True,
                                     **kwargs: Any) -> list[ToolSelection]:
        calls = response.message.additional_kwargs.get("tool_calls") or []
        if not calls and error_on_no_tool_call:
            invalid = response.message.additional_kwargs.get("invalid_tool_calls") or []
            raise ValueError(f"expected at least one tool call, got none; invalid calls: "
                             f"{[c['error'] for c in invalid] or 'none'}")
        return [ToolSelection(tool_id=c["id"], tool_name=c["function"]["name"],
                              tool_kwargs=c["function"]["arguments"]) for c in calls]

    # ---- the engine calls -------------------------------------------------------------------

    def _text_prompt(self, prompt: str, formatted: bool) -> str:
        return prompt if formatted else self.completion_to_prompt(prompt)

    def _prepare(self, kwargs: dict[str, Any]) -> tuple[CallPlan, dict[str, Any], Optional[ToolBinding]]:
        """The plan, the engine's arguments and the bound tools; `stop` is honoured."""
        tools = kwargs.get("tools")
        binding = ToolBinding.for_tools(tools, kwargs.get("tool_choice")) if tools else None
        stop = kwargs.get("stop")
        settings = {k: v for k, v in kwargs.items() if k not in (*BINDING_KWARGS, "stop")}
        plan = plan_call(self.settings(**settings))
        args = plan.engine_kwargs(stop)
        if binding is not None:
            args["config"] = args["config"].with_overrides(structure=binding.check)
        return plan, args, binding

    def _complete(self, prompt: Prompt, kwargs: dict[str, Any]) -> CompletionResponse:
        plan, args, binding = self._prepare(kwargs)
        prompt = _with_tools(prompt, binding)
        return response(check_budget(self.get_engine().generate(prompt, **args), plan), binding=binding)

    async def _acomplete(self, prompt: Prompt, kwargs: dict[str, Any]) -> CompletionResponse:
        plan, args, binding = self._prepare(kwargs)
        prompt = _with_tools(prompt, binding)
        result = await self.get_engine().agenerate(prompt, **args)
        return response(check_budget(result, plan), binding=binding)

    def _stream(self, prompt: Prompt, kwargs: dict[str, Any]) -> Iterator[CompletionResponse]:
        plan, args, binding = self._prepare(kwargs)  # bad settings fail at the call, not at next()
        events = self.get_engine().stream(_with_tools(prompt, binding), **args)
        return _mapped(events, StepResponses(plan, binding))

    def _astream(self, prompt: Prompt, kwargs: dict[str, Any]) -> AsyncIterator[CompletionResponse]:
        plan, args, binding = self._prepare(kwargs)
        events = self.get_engine().astream(_with_tools(prompt, binding), **args)
        return _amapped(events, StepResponses(plan, binding))


class StepResponses:
    """Turns one call's events into responses: text so far plus the step as delta, then
    a last response with the unstreamed rest as delta and raw (usage, stats, steps)."""

    def __init__(self, plan: CallPlan, binding: Optional[ToolBinding] = None) -> None:
        self.plan, self.binding, self.sent, self.raw_text = plan, binding, StreamedSteps(), ""
        self.text = ""

    def __call__(self, event: Event) -> CompletionResponse:
        if not isinstance(event, FinalEvent):
            self.raw_text += self.sent.add(event).text
            delta = self._content(self.raw_text)[len(self.text):]
            self.text += delta
            return CompletionResponse(text=self.text, delta=delta)
        check_budget(event.result, self.plan)
        final = response(event.result, binding=self.binding)
        final.delta = final.text[len(self.text):]
        return final

    def _content(self, text: str) -> str:
        """What can stream before the calls arrive at the end (ToolBinding.streamable)."""
        return self.binding.streamable(text) if self.binding is not None else text


def response(result: SearchResult, delta: str | None = None,
             binding: Optional[ToolBinding] = None) -> CompletionResponse:
    """A response; with tools bound, its text is what lies outside the calls and the calls
    are in additional_kwargs (OpenAI form, arguments as a dict)."""
    raw = {"usage": token_usage(result), **result_info(result),
           "steps": [step_info(s) for s in result.steps]}
    if binding is None:
        return CompletionResponse(text=result.text, delta=delta, raw=raw)
    content, valid, broken = binding.read(result.text)
    calls = [{"id": call_id(), "type": "function",
              "function": {"name": c.name, "arguments": c.arguments}} for c in valid]
    invalid = [{"id": call_id(), "name": c.name, "text": c.text, "error": c.error} for c in broken]
    raw["structure_valid"] = binding.valid(result.text)
    return CompletionResponse(text=content, delta=delta, raw=raw, additional_kwargs={
        "tool_calls": calls, **({"invalid_tool_calls": invalid} if invalid else {})})


def chat_prompt(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """LlamaIndex messages as {"role", "content"} dicts (plus an assistant turn's
    "tool_calls"), before tool turns are written out for the chat template."""
    prompt = []
    for m in messages:
        entry: dict[str, Any] = {"role": m.role.value, "content": m.content or ""}
        calls = m.additional_kwargs.get("tool_calls") if m.role.value == "assistant" else None
        if calls:
            entry["tool_calls"] = [_call_dict(c) for c in calls]
        prompt.append(entry)
    return prompt


def _call_dict(call: Any) -> dict[str, Any]:
    """An assistant turn's tool call (ours, OpenAI-style or a ToolSelection) as {name, arguments}."""
    if isinstance(call, ToolSelection):
        return {"name": call.tool_name, "arguments": call.tool_kwargs}
    function = call.get("function", call) if isinstance(call, dict) else None
    if not isinstance(function, dict) or "name" not in function:
        raise ConfigError(f"tool call {call!r:.80} in the chat history has no function name")
    arguments = function.get("arguments") or {}
    if isinstance(arguments, str):
        arguments = json.loads(arguments)
    return {"name": function["name"], "arguments": arguments}


def _with_tools(prompt: Prompt, binding: Optional[ToolBinding]) -> Prompt:
    """Chat prompts with tool turns written out and the bound tools listed."""
    if isinstance(prompt, str):
        if binding is not None:
            raise ConfigError("tools are bound to a text completion: use chat(...) with tools")
        return prompt
    return binding.prompt(prompt) if binding is not None else ToolBinding.plain(prompt)


def _mapped(events: Iterator[Event], convert: Callable[[Event], CompletionResponse]
            ) -> Iterator[CompletionResponse]:
    for event in events:
        yield convert(event)


async def _amapped(events: AsyncIterator[Event], convert: Callable[[Event], CompletionResponse]
                   ) -> AsyncIterator[CompletionResponse]:
    async for event in events:
        yield convert(event)
