"""What SpecsLLM and ChatSpecs share: how settings reach a call, and the call itself.

Settings reach a call in four ways, later ones winning:
constructor fields < `config={"configurable": {...}}` < `.bind(...)` / invoke kwargs.

LangChain hands `_generate` the invoke kwargs but not the RunnableConfig, and BaseLLM
leaves call kwargs out of its cache key. So invoke, ainvoke, stream and astream are
overridden only to read our keys from `config["configurable"]` and the call kwargs and
run the call on a copy whose fields hold them (`with_settings`: it shares the engine, so
nothing reloads). The copy's fields are what the LLM cache key, `_identifying_params` and
the traced invocation params are made of. No `configurable_fields` call is needed.
batch/abatch use Runnable's per-input versions, so every input keeps its own
configuration and its own budget, and inputs run concurrently.

Which configurable keys are ours: a key equal to a setting name (`"n"`,
`"latency_budget_s"`) or the same name prefixed with `specs_` (`"specs_n"`, which wins when
both are present). A `specs_` key that names no setting, or a value of the wrong type, is
an error naming the key. Every other key (thread_id, checkpoint_ns, other components'
fields) is left alone.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, ClassVar, Iterator, Optional

from langchain_core.language_models.base import LangSmithParams
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config
from pydantic import model_validator

from specs_engine.errors import ConfigError
from specs_engine.tool_calls import StructureCheck
from specs_engine.models import Prompt
from specs_engine.result import Event, FinalEvent, SearchResult
from specs_integrations._settings import (
    ACCEPTED,
    SETTINGS,
    CallPlan,
    SpecsFields,
    check_budget,
    plan_call,
    validate_overrides,
)

PREFIX = "specs_"
"""Prefix that marks a configurable key as ours beyond doubt."""
REMOTE_ONLY = ("timeout", "max_retries", "api_key")
"""LangChain's standard constructor parameters for hosted APIs. With backend="openai"
api_key and timeout go to the servers (SpecsFields); otherwise they are accepted (and
dropped) so generic code such as the standard test suite can construct us: they mean
nothing for in-process models. The time limit of a call is latency_budget_s."""
BUDGET_SETTINGS = ("latency_budget_s", "max_steps", "method", "n")
"""Settings added to the traced params as ls_<name>, so a trace shows each call's budget."""
ROUTING_KWARGS = ("stream",)
"""Call kwargs LangChain uses for its own routing; not settings."""


def configured_settings(config: Optional[RunnableConfig]) -> dict[str, Any]:
    """Our settings found in a RunnableConfig's configurable dict, validated."""
    configurable = ensure_config(config).get("configurable") or {}
    bare = [key for key in configurable if key in ACCEPTED]
    prefixed = [key for key in configurable if key.startswith(PREFIX)]
    for key in prefixed:
        if key[len(PREFIX):] not in ACCEPTED:
            raise ConfigError(
                f"configurable key {key!r} names no SPECS setting; known: "
                f"{', '.join(PREFIX + s for s in SETTINGS)} (or the same without the prefix)"
            )
    keys = {key.removeprefix(PREFIX): key for key in [*bare, *prefixed]}  # prefixed win
    found = {name: configurable[key] for name, key in keys.items()}
    return validate_overrides(found, {name: f"configurable[{key!r}]" for name, key in keys.items()})


class SpecsLangChainBase(SpecsFields):
    """Fields, settings plumbing and engine calls common to SpecsLLM and ChatSpecs."""

    stop: Optional[list[str]] = None
    """Default stop strings: the answer ends before the first one."""

    _ls_model_type: ClassVar[str] = "llm"

    @model_validator(mode="before")
    @classmethod
    def _drop_remote_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            kept = ("api_key", "timeout") if data.get("backend") == "openai" else ()
            data = {k: v for k, v in data.items() if k not in REMOTE_ONLY or k in kept}
        return data

    # ---- settings from the RunnableConfig -------------------------------------------

    def invoke(self, input: Any, config: Optional[RunnableConfig] = None, *,
               stop: Optional[list[str]] = None, **kwargs: Any) -> Any:
        llm, rest = self._configured(config, kwargs)
        return super(SpecsLangChainBase, llm).invoke(input, config, stop=stop, **rest)

    async def ainvoke(self, input: Any, config: Optional[RunnableConfig] = None, *,
                      stop: Optional[list[str]] = None, **kwargs: Any) -> Any:
        llm, rest = self._configured(config, kwargs)
        return await super(SpecsLangChainBase, llm).ainvoke(input, config, stop=stop, **rest)

    def stream(self, input: Any, config: Optional[RunnableConfig] = None, *,
               stop: Optional[list[str]] = None, **kwargs: Any) -> Iterator[Any]:
        llm, rest = self._configured(config, kwargs)
        return super(SpecsLangChainBase, llm).stream(input, config, stop=stop, **rest)

    async def astream(self, input: Any, config: Optional[RunnableConfig] = None, *,
                      stop: Optional[list[str]] = None, **kwargs: Any) -> AsyncIterator[Any]:
        llm, rest = self._configured(config, kwargs)
        async for chunk in super(SpecsLangChainBase, llm).astream(input, config, stop=stop, **rest):
            yield chunk

    def batch(self, inputs: list[Any], config: Any = None, *, return_exceptions: bool = False,
              **kwargs: Any) -> list[Any]:
        return Runnable.batch(self, inputs, config, return_exceptions=return_exceptions, **kwargs)

    async def abatch(self, inputs: list[Any], config: Any = None, *,
                     return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        return await Runnable.abatch(
            self, inputs, config, return_exceptions=return_exceptions, **kwargs
        )

    def _configured(self, config: Optional[RunnableConfig],
                    kwargs: dict[str, Any]) -> tuple[SpecsLangChainBase, dict[str, Any]]:
        """A copy carrying this call's settings (configurable under call kwargs), and the
        kwargs that are not settings. A copy rather than kwargs, because BaseLLM leaves
        call kwargs out of its cache key and traces: the copy's fields are in both."""
        ours = {k: v for k, v in kwargs.items() if k in ACCEPTED}
        settings = {**configured_settings(config), **validate_overrides(ours)}
        rest = {k: v for k, v in kwargs.items() if k not in ACCEPTED}
        return self._with_checked_settings(settings), rest

    # ---- identity: the cache key and tracing ----------------------------------------

    @property
    def _identifying_params(self) -> dict[str, Any]:
        """Models and every setting: two objects differing in a budget never share a cache
        entry. Per-call settings arrive as kwargs, which LangChain adds to the key itself."""
        models = {f"{role}_model": name for role, name in self.model_names().items()}
        return {**models, **{name: getattr(self, name) for name in SETTINGS}, "stop": self.stop}

    def _get_ls_params(self, stop: Optional[list[str]] = None, **kwargs: Any) -> LangSmithParams:
        settings = {**{s: getattr(self, s) for s in SETTINGS},
                    **{s: v for s, v in kwargs.items() if s in SETTINGS}}
        model = kwargs.get("model")
        params = LangSmithParams(
            ls_provider="specs",
            ls_model_name=model if isinstance(model, str) else self.model_name(),
            ls_model_type=self._ls_model_type,  # type: ignore[typeddict-item]
        )
        if isinstance(settings["temperature"], (int, float)):
            params["ls_temperature"] = settings["temperature"]
        max_tokens = kwargs.get("max_tokens", settings["max_new_tokens"])
        if isinstance(max_tokens, int):
            params["ls_max_tokens"] = max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        budget = {f"ls_{name}": settings[name] for name in BUDGET_SETTINGS if settings[name] is not None}
        return LangSmithParams(**params, **budget)  # the budget shows in traces  # type: ignore[typeddict-item]

    # ---- tokens: the models' own tokenizer --------------------------------------------

    def get_token_ids(self, text: str) -> list[int]:
        """Ids from the target's own tokenizer (the draft's without a target), not the
        GPT-2 fallback LangChain uses by default (it cannot load offline)."""
        return self.token_ids(text)

    # ---- the engine call, once for every entry point ---------------------------------

    def _prepare(self, stop: Optional[list[str]], kwargs: dict[str, Any],
                 structure: Optional[StructureCheck] = None) -> tuple[CallPlan, dict]:
        """The call's plan and engine arguments; bad settings fail here, before any model.
        `structure`: a chat call's bound tools or JSON reply, for the search to enforce."""
        if stop and self.stop:
            raise ConfigError("`stop` found in both the input and default params")
        settings = {k: v for k, v in kwargs.items() if k not in ROUTING_KWARGS}
        plan = plan_call(self.settings(**settings))
        args = plan.engine_kwargs(stop or self.stop)
        if structure is not None:
            args["config"] = args["config"].with_overrides(structure=structure)
        return plan, args

    def _search(self, prompt: Prompt, stop: Optional[list[str]], kwargs: dict,
                structure: Optional[StructureCheck] = None) -> SearchResult:
        plan, args = self._prepare(stop, kwargs, structure)
        return check_budget(self.get_engine().generate(prompt, **args), plan)

    async def _asearch(self, prompt: Prompt, stop: Optional[list[str]], kwargs: dict,
                       structure: Optional[StructureCheck] = None) -> SearchResult:
        plan, args = self._prepare(stop, kwargs, structure)
        return check_budget(await self.get_engine().agenerate(prompt, **args), plan)

    def _events(self, prompt: Prompt, stop: Optional[list[str]], kwargs: dict,
                structure: Optional[StructureCheck] = None) -> Iterator[Event]:
        plan, args = self._prepare(stop, kwargs, structure)
        for event in self.get_engine().stream(prompt, **args):
            yield _checked(event, plan)

    async def _aevents(self, prompt: Prompt, stop: Optional[list[str]], kwargs: dict,
                       structure: Optional[StructureCheck] = None) -> AsyncIterator[Event]:
        plan, args = self._prepare(stop, kwargs, structure)
        async for event in self.get_engine().astream(prompt, **args):
            yield _checked(event, plan)


def _checked(event: Event, plan: CallPlan) -> Event:
    if isinstance(event, FinalEvent):
        check_budget(event.result, plan)
    return event
