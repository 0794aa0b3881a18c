"""ChatSpecs: SPECS as a LangChain chat model."""

from __future__ import annotations

from typing import Any, AsyncIterator, ClassVar, Iterator, Optional

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ChatMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from specs_engine.errors import ConfigError
from specs_engine.result import Event, FinalEvent, SearchResult
from specs_integrations._settings import StreamedSteps, result_info, step_info, token_usage
from specs_integrations.langchain._settings import SpecsLangChainBase

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
    strict_budget=True). No tool calling, structured output or images.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())
    _ls_model_type: ClassVar[str] = "chat"

    streaming: bool = False
    """invoke() streams internally, so callbacks get one token event per step."""

    @property
    def _llm_type(self) -> str:
        return "specs-chat"

    def _generate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                  run_manager: Optional[CallbackManagerForLLMRun] = None,
                  **kwargs: Any) -> ChatResult:
        return self._chat_result(self._search(to_chat_prompt(messages), stop, kwargs))

    async def _agenerate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                         run_manager: Optional[AsyncCallbackManagerForLLMRun] = None,
                         **kwargs: Any) -> ChatResult:
        return self._chat_result(await self._asearch(to_chat_prompt(messages), stop, kwargs))

    def _stream(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                run_manager: Optional[CallbackManagerForLLMRun] = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        to_chunk = MessageChunks(self.model_name())
        for event in self._events(to_chat_prompt(messages), stop, kwargs):
            chunk = to_chunk(event)
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                       run_manager: Optional[AsyncCallbackManagerForLLMRun] = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        to_chunk = MessageChunks(self.model_name())
        async for event in self._aevents(to_chat_prompt(messages), stop, kwargs):
            chunk = to_chunk(event)
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def _chat_result(self, result: SearchResult) -> ChatResult:
        metadata = {**final_metadata(result, self.model_name()),
                    "steps": [step_info(s) for s in result.steps]}
        message = AIMessage(content=result.text, usage_metadata=usage_metadata(result),
                            response_metadata=metadata)
        return ChatResult(
            generations=[ChatGeneration(message=message)],
            llm_output={"token_usage": token_usage(result), "model_name": self.model_name()},
        )


class MessageChunks:
    """Turns one call's events into message chunks: one per streamed step, then a last
    chunk with the unstreamed rest, usage and stats (see llms.StepChunks)."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.sent = StreamedSteps()

    def __call__(self, event: Event) -> ChatGenerationChunk:
        if not isinstance(event, FinalEvent):
            step = step_info(self.sent.add(event))
            return ChatGenerationChunk(message=AIMessageChunk(
                content=step["text"], response_metadata={"steps": [step]}))
        metadata = {**final_metadata(event.result, self.model_name),
                    "steps": [step_info(s) for s in self.sent.rest(event.result)]}
        return ChatGenerationChunk(message=AIMessageChunk(
            content=event.delta, usage_metadata=usage_metadata(event.result),
            response_metadata=metadata, chunk_position="last"))


def to_chat_prompt(messages: list[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as {"role", "content"} dicts for the models' chat template."""
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
        prompt.append({"role": role, "content": message.text})
    return prompt


def usage_metadata(result: SearchResult) -> UsageMetadata:
    usage = token_usage(result)
    return UsageMetadata(input_tokens=usage["prompt_tokens"],
                         output_tokens=usage["completion_tokens"],
                         total_tokens=usage["total_tokens"])


def final_metadata(result: SearchResult, model_name: str) -> dict[str, Any]:
    """What a reply says about itself: model, why it ended, answer, time split."""
    return {"model_name": model_name, "model_provider": "specs",
            "finish_reason": "stop" if result.finished else result.stop_reason,
            **result_info(result)}
