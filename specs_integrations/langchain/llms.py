"""SpecsLLM: SPECS as a LangChain text-completion LLM."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable, ClassVar, Iterator, Optional

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM
from langchain_core.outputs import Generation, GenerationChunk, LLMResult
from pydantic import ConfigDict

from specs_engine.result import Event, FinalEvent, SearchResult
from specs_integrations._settings import StreamedSteps, result_info, step_info, token_usage
from specs_integrations.langchain._settings import SpecsLangChainBase


class SpecsLLM(SpecsLangChainBase, BaseLLM):
    """Latency-bounded step-level search (draft proposes, target and reward verify).

    Example:
        ```python
        from langchain_core.prompts import PromptTemplate
        from specs_integrations.langchain import SpecsLLM

        llm = SpecsLLM(preset="qwen2.5-coder", latency_budget_s=10.0)   # or engine=...
        chain = PromptTemplate.from_template("Q: {q}\\nA:") | llm
        chain.invoke({"q": "What is 12 * 7?"},
                     config={"configurable": {"latency_budget_s": 2.0, "n": 8}})
        for step in chain.stream({"q": "What is 12 * 7?"}):   # one chunk per step
            print(step, end="")
        ```

    Each call has its own budget; when it runs out the call returns the best answer so
    far with generation_info["budget_exhausted"] = True (an error only with
    strict_budget=True). generation_info also holds the answer, where the time went and
    how many steps each model wrote; llm_output["token_usage"] the token counts.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())
    _ls_model_type: ClassVar[str] = "llm"

    @property
    def _llm_type(self) -> str:
        return "specs"

    def _generate(self, prompts: list[str], stop: Optional[list[str]] = None,
                  run_manager: Optional[CallbackManagerForLLMRun] = None,
                  **kwargs: Any) -> LLMResult:
        """Prompts of one generate() call run concurrently, each with its own budget."""
        search: Callable[[str], SearchResult] = lambda p: self._search(p, stop, kwargs)  # noqa: E731
        if len(prompts) == 1:
            return self._llm_result([search(prompts[0])])
        with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
            return self._llm_result(list(pool.map(search, prompts)))

    async def _agenerate(self, prompts: list[str], stop: Optional[list[str]] = None,
                         run_manager: Optional[AsyncCallbackManagerForLLMRun] = None,
                         **kwargs: Any) -> LLMResult:
        results = await asyncio.gather(*(self._asearch(p, stop, kwargs) for p in prompts))
        return self._llm_result(list(results))

    def _stream(self, prompt: str, stop: Optional[list[str]] = None,
                run_manager: Optional[CallbackManagerForLLMRun] = None,
                **kwargs: Any) -> Iterator[GenerationChunk]:
        to_chunk = StepChunks()
        for event in self._events(prompt, stop, kwargs):
            chunk = to_chunk(event)
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(self, prompt: str, stop: Optional[list[str]] = None,
                       run_manager: Optional[AsyncCallbackManagerForLLMRun] = None,
                       **kwargs: Any) -> AsyncIterator[GenerationChunk]:
        to_chunk = StepChunks()
        async for event in self._aevents(prompt, stop, kwargs):
            chunk = to_chunk(event)
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def _llm_result(self, results: list[SearchResult]) -> LLMResult:
        usages = [token_usage(r) for r in results]
        total = {key: sum(u[key] for u in usages) for key in usages[0]}
        return LLMResult(
            generations=[[generation(r)] for r in results],
            llm_output={"token_usage": total, "model_name": self.model_name()},
        )


def generation(result: SearchResult) -> Generation:
    """A whole result: its text, and its steps, stats and usage as generation_info."""
    info = {**result_info(result), "steps": [step_info(s) for s in result.steps],
            "token_usage": token_usage(result)}
    return Generation(text=result.text, generation_info=info)


class StepChunks:
    """Turns one call's events into chunks: a chunk per streamed step, then a final chunk
    with the unstreamed rest, stats and usage. Steps ride in generation_info["steps"] as
    lists, so LangChain's chunk addition concatenates them: the aggregate of a stream
    equals generation() of its result."""

    def __init__(self) -> None:
        self.sent = StreamedSteps()

    def __call__(self, event: Event) -> GenerationChunk:
        if not isinstance(event, FinalEvent):
            return GenerationChunk(text=event.step.text,
                                   generation_info={"steps": [step_info(self.sent.add(event))]})
        info = {**result_info(event.result), "token_usage": token_usage(event.result),
                "steps": [step_info(s) for s in self.sent.rest(event.result)]}
        return GenerationChunk(text=event.delta, generation_info=info)
