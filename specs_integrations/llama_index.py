"""SpecsLLM for LlamaIndex: SPECS as a CustomLLM for query engines, chat engines and agents.

Query engines and agents pass no per-call settings, so budgets live on the instance;
`with_budget(...)` makes a cheap copy that shares the loaded models.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable, Iterator, Sequence

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
except ImportError:  # pragma: no cover - depends on the environment
    from specs_engine.errors import MissingExtraError

    raise MissingExtraError("llama-index-core", "llama-index") from None
from pydantic import ConfigDict

from specs_engine.config import Budget
from specs_engine.models import Prompt
from specs_engine.result import Event, FinalEvent, SearchResult
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


class SpecsLLM(SpecsFields, CustomLLM):
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

    # ---- the engine calls -------------------------------------------------------------------

    def _text_prompt(self, prompt: str, formatted: bool) -> str:
        return prompt if formatted else self.completion_to_prompt(prompt)

    def _prepare(self, kwargs: dict[str, Any]) -> tuple[CallPlan, dict[str, Any]]:
        plan = plan_call(self.settings(**kwargs))
        return plan, plan.engine_kwargs(None)

    def _complete(self, prompt: Prompt, kwargs: dict[str, Any]) -> CompletionResponse:
        plan, args = self._prepare(kwargs)
        return response(check_budget(self.get_engine().generate(prompt, **args), plan))

    async def _acomplete(self, prompt: Prompt, kwargs: dict[str, Any]) -> CompletionResponse:
        plan, args = self._prepare(kwargs)
        return response(check_budget(await self.get_engine().agenerate(prompt, **args), plan))

    def _stream(self, prompt: Prompt, kwargs: dict[str, Any]) -> Iterator[CompletionResponse]:
        plan, args = self._prepare(kwargs)  # bad settings fail at the call, not at next()
        return _mapped(self.get_engine().stream(prompt, **args), StepResponses(plan))

    def _astream(self, prompt: Prompt, kwargs: dict[str, Any]) -> AsyncIterator[CompletionResponse]:
        plan, args = self._prepare(kwargs)
        return _amapped(self.get_engine().astream(prompt, **args), StepResponses(plan))


class StepResponses:
    """Turns one call's events into responses: text so far plus the step as delta, then
    a last response with the unstreamed rest as delta and raw (usage, stats, steps)."""

    def __init__(self, plan: CallPlan) -> None:
        self.plan, self.sent, self.text = plan, StreamedSteps(), ""

    def __call__(self, event: Event) -> CompletionResponse:
        if not isinstance(event, FinalEvent):
            delta = self.sent.add(event).text
            self.text += delta
            return CompletionResponse(text=self.text, delta=delta)
        check_budget(event.result, self.plan)
        return response(event.result, delta=event.delta)


def response(result: SearchResult, delta: str | None = None) -> CompletionResponse:
    raw = {"usage": token_usage(result), **result_info(result),
           "steps": [step_info(s) for s in result.steps]}
    return CompletionResponse(text=result.text, delta=delta, raw=raw)


def chat_prompt(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """LlamaIndex messages as {"role", "content"} dicts for the models' chat template."""
    return [{"role": m.role.value, "content": m.content or ""} for m in messages]


def _mapped(events: Iterator[Event], convert: Callable[[Event], CompletionResponse]
            ) -> Iterator[CompletionResponse]:
    for event in events:
        yield convert(event)


async def _amapped(events: AsyncIterator[Event], convert: Callable[[Event], CompletionResponse]
                   ) -> AsyncIterator[CompletionResponse]:
    async for event in events:
        yield convert(event)
