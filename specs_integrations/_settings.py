"""What every integration shares, framework-free: the budget settings, the engine behind
a wrapper, and the translation of a SearchResult into plain dicts.

The settings are pydantic fields on `SpecsFields`, a mixin that LangChain's and
LlamaIndex's classes both inherit (both frameworks are pydantic models), so one field
list with one docstring each serves the two frameworks. A per-call override is checked
against the same field types, so a typo or a wrong type fails the same way everywhere.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal, Mapping, Optional

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, TypeAdapter
from pydantic import ValidationError, model_validator

from specs_engine.backends import SERVING_OPTIONS, cache_key, load_once
from specs_engine.call_context import note_load, take_load
from specs_engine.config import Budget, SpecsConfig, from_settings
from specs_engine.engine import SpecsEngine
from specs_engine.errors import ConfigError, SpecsError
from specs_engine.methods import METHODS, MODEL_ROLES, REGISTRY
from specs_engine.result import SearchResult, Step, StepEvent

Method = Literal[METHODS]
ModelRole = Literal[MODEL_ROLES]

SETTINGS = (
    "latency_budget_s", "max_steps", "max_new_tokens", "method", "n", "beam_width",
    "beta", "tau", "temperature", "seed", "model_role", "strict_budget",
)
"""Per-call settings: accepted as constructor fields, call kwargs and configuration."""
_ALIASES = {"max_tokens": "max_new_tokens"}
"""LangChain's standard name for the token limit, accepted everywhere ours is."""
ACCEPTED = (*SETTINGS, *_ALIASES)
_CONFIG_KNOBS = ("n", "beam_width", "beta", "tau", "temperature", "seed")
"""The settings that go into the engine's SpecsConfig (the rest shape the Budget/call)."""


class BudgetExhaustedError(SpecsError, TimeoutError):
    """Raised only with strict_budget=True, when a budget cut the search short.

    `result` holds the answer found so far, so a strict caller loses nothing.
    """

    def __init__(self, result: SearchResult):
        self.result = result
        super().__init__(
            f"the budget ran out ({result.stop_reason}) after {len(result.steps)} step(s) and "
            f"{result.stats.wall_s:.2f}s; the partial answer is on this error's .result "
            "(set strict_budget=False to get it as a normal result)"
        )


class SpecsFields(BaseModel):
    """Where the models come from, and the budget of each call."""

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    engine: Optional[SpecsEngine] = Field(default=None, exclude=True, repr=False)
    """A ready SpecsEngine to share between wrappers; or give model locations instead."""
    preset: Optional[str] = None
    """A named set of three models (e.g. "qwen2.5-coder"); fills draft/target/reward."""
    draft: Optional[str] = None
    """Location of the draft model: a directory, a hub id or a registry name."""
    target: Optional[str] = None
    """Location of the target model (None: single-model methods on the draft)."""
    reward: Optional[Any] = None
    """Location of the reward model, or a callable (question, steps) -> float."""
    backend: Optional[str] = None
    """Backend that loads draft and target ("transformers", "llama.cpp", "vllm", "openai");
    None picks the fastest present: llama.cpp for the registry preset on a CPU when the
    `llama-cpp` extra is installed, transformers otherwise."""
    dtype: str = "bfloat16"
    device: str = "cpu"
    backend_kwargs: dict[str, Any] = Field(default_factory=dict, repr=False, exclude=True)
    """Extra arguments for the backend loader (never logged: may hold an API key)."""
    api_key: Optional[SecretStr] = Field(default=None, repr=False, exclude=True)
    """backend="openai": the servers' key (default $SPECS_OPENAI_API_KEY); only ever sent
    in the Authorization header."""
    timeout: Optional[float] = Field(default=None, gt=0,
                                     validation_alias=AliasChoices("timeout", "timeout_s"))
    """backend="openai": most seconds one request may take (a call's budget cuts it sooner)."""
    gpu_memory_utilization: Optional[float] = Field(default=None, gt=0, le=1)
    """backend="vllm": share of GPU memory each in-process vLLM engine may take."""
    max_model_len: Optional[int] = Field(default=None, ge=1)
    """backend="vllm": context window to allocate KV cache for (None: the model's)."""

    latency_budget_s: Optional[float] = Field(default=None, strict=True, gt=0)
    """Wall-clock seconds per call. The call returns by then (plus a small overrun)
    with the best answer so far, flagged budget_exhausted. None: no time limit."""
    max_steps: Optional[int] = Field(default=None, strict=True, ge=1)
    """Most reasoning steps per answer (None: the engine's default, 16)."""
    max_new_tokens: Optional[int] = Field(
        default=None, strict=True, ge=1,
        validation_alias=AliasChoices("max_new_tokens", "max_tokens"),
    )
    """Most generated tokens per answer (None: 512). `max_tokens` is accepted as an alias."""
    method: Method = "specs"
    """Search: specs (draft + target + reward), beam_search, best_of_n, rsd or greedy."""
    n: Optional[int] = Field(default=None, strict=True, ge=1)
    """Candidates proposed per step over all beams (None: the engine's default, 4)."""
    beam_width: Optional[int] = Field(default=None, strict=True, ge=1)
    """Candidates sharing one parent beam; must divide n (None: 4)."""
    beta: Optional[float] = Field(default=None, strict=True, ge=0)
    """Weight of the reward in the soft-verification score (None: 4.0)."""
    tau: Optional[float] = Field(default=None, strict=True)
    """Best reward above which a target round switches to draft mode (None: 0.5)."""
    temperature: Optional[float] = Field(default=None, strict=True, ge=0)
    """Sampling temperature of the proposing model (None: 0.7). 0 (the default of many
    LangChain templates) means greedy proposals with one candidate per step: n and
    beam_width default to 1 then, the draft's greedy step is verified and the target's
    greedy step replaces a rejected one; deterministic without a seed."""
    seed: Optional[int] = Field(default=None, strict=True)
    """Fixed seed: the same call gives the same answer twice."""
    model_role: ModelRole = "target"
    """Which model runs the single-model methods (beam_search, best_of_n, greedy)."""
    strict_budget: bool = Field(default=False, strict=True)
    """Raise BudgetExhaustedError instead of returning a cut-short answer."""

    _engine: Optional[SpecsEngine] = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _before(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "max_tokens" in data and "max_new_tokens" in data:
            raise ConfigError(
                f"max_tokens={data['max_tokens']!r} and max_new_tokens={data['max_new_tokens']!r}"
                " both given: max_tokens is an alias of max_new_tokens; give one"
            )
        return {**locations_from_env(data), **data}

    @model_validator(mode="after")
    def _check_sources(self) -> SpecsFields:
        """Fail at construction, not at the first call: models and settings both."""
        if self.engine is not None and (self.preset or self.draft or self.target or self.reward):
            raise ConfigError(
                "pass either engine=... or model locations (preset/draft/target/reward), not both"
            )
        if self.engine is None and not (self.preset or self.draft or self.target):
            raise ConfigError(
                "no models: pass engine=SpecsEngine(...), preset='qwen2.5-coder', or "
                "draft=/target=/reward= model locations (or set SPECS_PRESET or SPECS_DRAFT/"
                "SPECS_TARGET/SPECS_REWARD)"
            )
        plan_call(self.settings())
        self.serving_kwargs()  # an option of another backend fails here, by name
        return self

    def serving_kwargs(self) -> dict[str, Any]:
        """backend_kwargs plus the serving options set as fields, checked to belong to
        the backend (an api_key for a local model is a mistake, not a no-op)."""
        options = {"api_key": self.api_key.get_secret_value() if self.api_key else None,
                   "timeout_s": self.timeout, "gpu_memory_utilization": self.gpu_memory_utilization,
                   "max_model_len": self.max_model_len}
        owner = {name: backend for backend, names in SERVING_OPTIONS.items() for name in names}
        kwargs = dict(self.backend_kwargs)
        for name, value in options.items():
            if value is None:
                continue
            field = "timeout" if name == "timeout_s" else name
            if owner[name] != self.backend:
                raise ConfigError(f"{field}= is an option of backend={owner[name]!r}, but "
                                  f"backend={self.backend!r}")
            if name in kwargs:
                raise ConfigError(f"{field}= given both as a field and in backend_kwargs; give one")
            kwargs[name] = value
        return kwargs

    @classmethod
    def from_pretrained(
        cls, draft: Optional[str] = None, target: Optional[str] = None, reward: Any = None,
        **fields: Any,
    ) -> Any:
        """Build from model locations; the models load once per process, on first use."""
        return cls(draft=draft, target=target, reward=reward, **fields)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """This object's settings with per-call overrides applied (each one validated)."""
        merged = {name: getattr(self, name) for name in SETTINGS}
        merged.update(validate_overrides(overrides))
        return merged

    def with_settings(self, **settings: Any):
        """A copy with other settings that shares this one's engine (nothing reloads)."""
        return self._with_checked_settings(validate_overrides(settings))

    def _with_checked_settings(self, settings: Mapping[str, Any]):
        """with_settings for settings validate_overrides has already checked (a call's
        configurable and kwargs), so each value is checked once."""
        if not settings:
            return self
        copy = self.model_copy(update=dict(settings))
        plan_call(copy.settings())  # settings that only fail together (n and beam_width)
        return copy

    def get_engine(self) -> SpecsEngine:
        """The engine: the one given, or the process-wide one for these model locations."""
        if self.engine is not None:
            return self.engine
        if self._engine is None:
            self._engine = shared_engine(self._locations(), self.backend, self.dtype,
                                         self.device, self.serving_kwargs())
        return self._engine

    def warm_up(self):
        """Loads the models and runs one tiny call through them now, so no call's budget
        pays for loading (the first call reports any load it did as stats.load_s)."""
        self.get_engine().warm_up()
        take_load()
        return self

    def model_names(self) -> dict[str, Optional[str]]:
        """Models by role, without loading anything (for cache keys and tracing)."""
        if self.engine is not None:
            return self.engine.describe()
        locations = self._locations()
        reward = locations["reward"]
        return {**locations, "reward": reward if reward is None or isinstance(reward, str)
                else getattr(reward, "__name__", type(reward).__name__)}

    def token_ids(self, text: str) -> list[int]:
        """Token ids of text from the target's own tokenizer (the draft's without a
        target); loads the models if they are not loaded yet."""
        engine = self.get_engine()
        return (engine.target or engine.draft).encode(text)

    def prompt_token_count(self, prompt: Any) -> int:
        """Tokens of a prompt as the target reads it (chat messages through its template)."""
        engine = self.get_engine()
        return len((engine.target or engine.draft).encode_prompt(prompt))

    def model_name(self) -> str:
        """The name users see: the target (it sets the quality bar), else the draft."""
        names = self.model_names()
        return names["target"] or names["draft"] or "specs"

    def _locations(self) -> dict[str, Any]:
        from specs_engine.sources import resolve_preset

        base = resolve_preset(self.preset, self.backend) if self.preset else {}
        return {role: getattr(self, role) or base.get(role) for role in ("draft", "target", "reward")}


LOCATION_ENV = {"preset": "SPECS_PRESET", "draft": "SPECS_DRAFT", "target": "SPECS_TARGET",
                "reward": "SPECS_REWARD"}
"""Environment variables read for model locations when a constructor names no models, so
deployments configure the models the way hosted LLMs take their API keys."""


def locations_from_env(data: Mapping[str, Any]) -> dict[str, str]:
    if any(data.get(key) is not None for key in ("engine", *LOCATION_ENV)):
        return {}
    return {key: os.environ[var] for key, var in LOCATION_ENV.items() if os.environ.get(var)}


def validate_overrides(
    overrides: Mapping[str, Any], shown: Optional[Mapping[str, str]] = None
) -> dict[str, Any]:
    """Per-call settings checked against the field types; unknown names refused by name.

    shown maps a setting to how the caller spelled it (e.g. a configurable key), so the
    error names what the caller wrote.
    """
    shown = shown or {}
    for alias, name in _ALIASES.items():  # as the constructor does
        if alias in overrides and name in overrides:
            raise ConfigError(f"{shown.get(alias, alias)}={overrides[alias]!r} and "
                              f"{shown.get(name, name)}={overrides[name]!r} both given: "
                              f"{alias} is an alias of {name}; give one")
    unknown = sorted(set(overrides) - set(ACCEPTED))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(repr(shown.get(k, k)) for k in unknown)}; "
            f"allowed per-call settings: {', '.join(SETTINGS)}"
        )
    return {
        _ALIASES.get(name, name): _check_value(shown.get(name, name), _ALIASES.get(name, name), value)
        for name, value in overrides.items()
    }


@functools.lru_cache(maxsize=None)
def _adapter(field: str) -> TypeAdapter:
    """The field's type with its constraints (strictness, bounds), built once per field."""
    info = SpecsFields.model_fields[field]
    return TypeAdapter(Annotated[(info.annotation, *info.metadata)] if info.metadata
                       else info.annotation)


def _check_value(key: str, field: str, value: Any) -> Any:
    info = SpecsFields.model_fields[field]
    try:
        return _adapter(field).validate_python(value)
    except ValidationError as exc:
        raise ConfigError(
            f"{key}={value!r} is not allowed: {exc.errors()[0]['msg'].lower()} "
            f"({field} is {_describe(info)})"
        ) from None


def _describe(info: Any) -> str:
    annotation = info.annotation
    annotation = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    annotation = annotation.replace("typing.", "")
    bounds = [f"{op} {getattr(m, op)}" for m in info.metadata
              for op in ("gt", "ge") if getattr(m, op, None) is not None]
    return " ".join([annotation, *bounds])


@dataclass(frozen=True)
class CallPlan:
    """Settings turned into the engine's arguments for one call."""

    method: str
    config: SpecsConfig
    budget: Budget
    model_role: str
    strict_budget: bool

    def engine_kwargs(self, stop: Optional[list[str]]) -> dict[str, Any]:
        return dict(method=self.method, config=self.config, budget=self.budget,
                    model=self.model_role, stop=stop or None)


def plan_call(settings: Mapping[str, Any]) -> CallPlan:
    """Validated engine arguments for a call; the engine's defaults fill what is None."""
    knobs = {k: settings[k] for k in _CONFIG_KNOBS if settings.get(k) is not None}
    if knobs.get("temperature") == 0:  # greedy proposals: one candidate per step
        if not REGISTRY[settings["method"]].samples:
            del knobs["temperature"]
        else:
            knobs.setdefault("n", 1)
            knobs.setdefault("beam_width", 1)
    limits = {"latency_s": settings.get("latency_budget_s"), "max_steps": settings.get("max_steps"),
              "max_new_tokens": settings.get("max_new_tokens")}
    config, budget = from_settings({**knobs, **{k: v for k, v in limits.items() if v is not None}})
    return CallPlan(
        method=settings["method"],
        config=config,
        budget=budget,
        model_role=settings.get("model_role", "target"),
        strict_budget=bool(settings.get("strict_budget")),
    )


def shared_engine(locations: Mapping[str, Any], backend: Optional[str], dtype: str, device: str,
                  backend_kwargs: Mapping[str, Any]) -> SpecsEngine:
    """One engine per set of model locations per process, kept in the loaders' one cache
    (thread-safe: built once even when many threads ask at the same time), since LangChain
    re-creates a configured object on every call. The time spent loading (or waiting for
    another thread's load) is noted for the call about to run: it reports it as load_s."""
    key = ("engine", tuple(sorted((k, _hashable(v)) for k, v in locations.items())), backend,
           dtype, device, cache_key(dict(backend_kwargs)))
    started, built = time.monotonic(), []

    def build() -> SpecsEngine:
        built.append(True)
        return SpecsEngine.from_pretrained(**locations, backend=backend, dtype=dtype,
                                           device=device, **backend_kwargs)

    engine = load_once(key, build)
    waited = time.monotonic() - started
    if built or waited > 0.01:  # > 0.01 s: the one loaders' lock was held by a load
        note_load(waited)
    return engine


def _hashable(value: Any) -> Any:
    try:
        hash(value)
        return value
    except TypeError:
        return id(value)


# ---- results as plain dicts -------------------------------------------------------------


def check_budget(result: SearchResult, plan: CallPlan) -> SearchResult:
    """The result, or BudgetExhaustedError when the caller asked for strictness."""
    if plan.strict_budget and result.budget_exhausted:
        raise BudgetExhaustedError(result)
    return result


class StreamedSteps:
    """Counts the steps a stream has sent, so its final event adds only the rest
    (the engine streams a step once no beam can drop it; the rest come at the end)."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, event: StepEvent) -> Step:
        self.count += 1
        return event.step

    def rest(self, result: SearchResult) -> list[Step]:
        return result.steps[self.count:]


def token_usage(result: SearchResult) -> dict[str, int]:
    prompt, completion = result.stats.prompt_tokens, result.stats.completion_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def step_info(step: Step) -> dict[str, Any]:
    return asdict(step)


def result_info(result: SearchResult) -> dict[str, Any]:
    """Everything about a result except its text and steps: flags, answer, time split."""
    return {
        "method": result.method,
        "answer": result.answer,
        "finished": result.finished,
        "budget_exhausted": result.budget_exhausted,
        "stop_reason": result.stop_reason,
        "candidates_considered": result.candidates_considered,
        **result.stats.to_dict(),
    }
