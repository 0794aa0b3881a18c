"""SpecsEngine: the one public entry point. It validates a call, builds a SearchRun and
hands it to a strategy; streaming and async are derived from the same call.

Everything that can be wrong with a call is checked here, before any model runs.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable, Iterator, Mapping, Optional, Sequence, Union

from specs_engine import call_context
from specs_engine.call_context import CallContext
from specs_engine.config import Budget, SpecsConfig, build
from specs_engine.errors import ConfigError
from specs_engine.methods import MODEL_ROLES, get_method
from specs_engine.models import LanguageModel, Prompt, ProposalParams, RewardModel
from specs_engine.result import Event, FinalEvent, SearchResult
from specs_engine.rewards.target_probe import TargetProbe
from specs_engine.search.clock import Clock, RunClock
from specs_engine.search.run import Roles, SearchRun, question_of

RewardLike = Union[RewardModel, Callable[[str, Sequence[str]], float]]
ConfigLike = Union[SpecsConfig, Mapping[str, Any], None]
BudgetLike = Union[Budget, Mapping[str, Any], None]
_DONE = object()


class SpecsEngine:
    """Draft, target and reward models, and the searches that use them.

    Example:
        engine = SpecsEngine.from_pretrained(draft="qwen2.5-coder-0.5b",
                                             target="qwen2.5-coder-1.5b", reward="specs-probe-target")
        result = engine.generate("What is 12 * 7?", budget=Budget(latency_s=20))
        print(result.answer, result.stats.steps_from_draft)

    `clock` is for tests: deadlines handed to the models are compared with
    time.monotonic() inside the backends, so a custom clock must run in step with it.
    """

    def __init__(
        self,
        draft: Optional[LanguageModel] = None,
        target: Optional[LanguageModel] = None,
        reward: Optional[RewardLike] = None,
        *,
        clock: Clock = time.monotonic,
    ):
        if draft is None and target is None:
            raise ConfigError("SpecsEngine needs a draft or a target model; both are None")
        for role, model in (("draft", draft), ("target", target)):
            if model is not None and not isinstance(model, LanguageModel):
                raise ConfigError(
                    f"{role}={model!r} is not a LanguageModel (needs name, context_window, "
                    "tokenizer_fingerprint, encode_prompt, encode, propose, score)"
                )
        self.draft, self.target, self.reward = draft, target, _as_reward_model(reward)
        _check_probe_target(self.reward, target)
        self.clock = clock
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="specs-verify")

    @classmethod
    def from_pretrained(
        cls,
        draft: Optional[str] = None,
        target: Optional[str] = None,
        reward: Optional[Union[str, RewardLike]] = None,
        *,
        preset: Optional[str] = None,
        backend: Optional[str] = None,
        dtype: str = "bfloat16",
        device: str = "cpu",
        **backend_kwargs: Any,
    ) -> SpecsEngine:
        """Loads models from local directories, hub ids or registry names; `preset` (e.g.
        "qwen2.5-coder") fills the roles not given. `backend` None picks llama.cpp for
        registry models on the CPU when llama-cpp-python is installed (their GGUFs run
        there at several times transformers' decode speed), else transformers. Models are
        cached per process, so engines built twice from the same locations share weights.
        `backend_kwargs` go to the language models' backend, e.g. for backend="llama.cpp"
        n_threads (default: every core this process may use; pass fewer when other work
        shares the machine), n_ctx, n_seq_max, kv_type (see LlamaCppLM)."""
        from specs_engine.backends import choose_backend, load_language_model
        from specs_engine.rewards import load_reward_model, reward_options

        if preset is not None:
            from specs_engine.sources import resolve_preset

            roles = resolve_preset(preset, backend)
            draft, target = draft or roles["draft"], target or roles["target"]
            reward = reward or roles["reward"]
        backend = choose_backend(backend, [loc for loc in (draft, target) if loc is not None], device)

        def lm(location: Optional[str], role: str) -> Optional[LanguageModel]:
            if location is None:
                return None
            named = {"role": role} if backend == "openai" else {}  # errors name the server's role
            return load_language_model(location, backend=backend, dtype=dtype, device=device,
                                       **named, **backend_kwargs)

        reward_model = None if reward is None else load_reward_model(
            reward, backend=backend, dtype=dtype, device=device,
            **{k: v for k, v in backend_kwargs.items() if k in reward_options(backend)},
        )
        probe = reward_model if isinstance(reward_model, TargetProbe) else None
        if probe is not None:  # refused before the language models load
            if target is None:
                raise ConfigError(f"reward {probe.name!r} reads the target's hidden states, but no "
                                  "target was given: pass target= (or a preset)")
            probe.check_target(target, backend)
        draft_lm, target_lm = lm(draft, "draft"), lm(target, "target")
        if probe is not None:
            reward_model = probe.attach(target_lm, target, backend)
        return cls(draft=draft_lm, target=target_lm, reward=reward_model)

    @property
    def context_window(self) -> int:
        """The smallest context window among the language models."""
        return min(m.context_window for m in (self.draft, self.target) if m is not None)

    def describe(self) -> dict[str, Optional[str]]:
        """Model names by role (for cache keys and tracing)."""
        return {
            "draft": getattr(self.draft, "name", None),
            "target": getattr(self.target, "name", None),
            "reward": getattr(self.reward, "name", None),
        }

    # ---- the calls ----------------------------------------------------------------

    def generate(
        self,
        prompt: Prompt,
        method: str = "specs",
        config: ConfigLike = None,
        budget: BudgetLike = None,
        *,
        model: str = "target",
        stop: Optional[Sequence[str]] = None,
        on_event: Optional[Callable[[Event], None]] = None,
        cancel: Optional[threading.Event] = None,
        entered: Optional[float] = None,
    ) -> SearchResult:
        """Runs one search and returns its result, by the budget's deadline. The clock
        starts at entry: encoding the prompt and waiting for models other calls are using
        count against the budget like the search itself. `entered` is the clock's value
        when the call entered (stream() passes its own: its search runs in a thread)."""
        entered = self.clock() if entered is None else entered
        budget = _as_settings(Budget, budget, "budget")  # checked once, here
        timer = RunClock(self.clock, entered, budget.latency_s)  # the call's one deadline
        call = CallContext(timer.monotonic_deadline(), load_s=call_context.take_load())
        with call_context.opened(call):
            run = self._prepare(prompt, method, config, budget, model, stop, on_event, cancel,
                                timer=timer, call=call)
            get_method(method).run(run, model)
            return run.finish(method)

    def warm_up(self) -> SpecsEngine:
        """One tiny proposal, score and reward through every model, so the first real
        call's budget pays for no lazy initialisation (allocator, kernels, tokenizer
        caches). Models already loaded at construction; call this once before calls with
        a budget, e.g. `SpecsEngine.from_pretrained(preset="qwen2.5-coder").warm_up()`."""
        params = ProposalParams(delimiter="\n\n", max_new_tokens=2, greedy=True)
        for lm in (self.draft, self.target):
            if lm is not None:
                ids = lm.encode_prompt("Warm-up: 1 + 1 =")
                [candidates] = lm.propose([ids], 1, params)
                lm.score([ids], [list(candidates[0].token_ids) or ids[-1:]])
        if self.reward is not None:
            self.reward.score("Warm-up: 1 + 1 =", [["1 + 1 = 2."]])
        return self

    def stream(self, prompt: Prompt, method: str = "specs", config: ConfigLike = None,
               budget: BudgetLike = None, **kwargs: Any) -> Iterator[Event]:
        """Yields a StepEvent per settled step, then a FinalEvent. The budget's clock starts
        here, at the call, not at the first next(); validation errors raise at the first
        next(), before any model runs."""
        return self._events(self.clock(), prompt, method, config, budget, kwargs)

    def _events(self, entered: float, prompt: Prompt, method: str, config: ConfigLike,
                budget: BudgetLike, kwargs: dict[str, Any]) -> Iterator[Event]:
        events: queue.Queue = queue.Queue()
        cancel = self._start(events.put, entered, prompt, method, config, budget, kwargs)
        try:
            while (item := events.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()

    async def agenerate(self, prompt: Prompt, method: str = "specs", config: ConfigLike = None,
                        budget: BudgetLike = None, **kwargs: Any) -> SearchResult:
        """generate() in a worker thread, so the event loop keeps running."""
        async for event in self.astream(prompt, method, config, budget, **kwargs):
            if isinstance(event, FinalEvent):
                return event.result
        raise AssertionError("a search always ends with a FinalEvent")

    def astream(self, prompt: Prompt, method: str = "specs", config: ConfigLike = None,
                budget: BudgetLike = None, **kwargs: Any) -> AsyncIterator[Event]:
        """stream() for asyncio: the search runs in a thread, events cross to the loop. The
        budget's clock starts here, at the call, not at the first iteration."""
        return self._aevents(self.clock(), prompt, method, config, budget, kwargs)

    async def _aevents(self, entered: float, prompt: Prompt, method: str, config: ConfigLike,
                       budget: BudgetLike, kwargs: dict[str, Any]) -> AsyncIterator[Event]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # the consumer's loop closed after it had its result
                pass

        cancel = self._start(put, entered, prompt, method, config, budget, kwargs)
        try:
            while (item := await events.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()

    # ---- validation and plumbing ----------------------------------------------------

    def _start(self, put: Callable[[Any], None], entered: float, prompt: Prompt, method: str,
               config: ConfigLike, budget: BudgetLike, kwargs: dict[str, Any]) -> threading.Event:
        """Runs generate() in a thread that puts events, an exception, then _DONE."""
        cancel = threading.Event()
        loaded = call_context.take_load()

        def work() -> None:
            call_context.note_load(loaded)  # this thread's context is a new one
            try:
                self.generate(prompt, method, config, budget, on_event=put, cancel=cancel,
                              entered=entered, **kwargs)
            except BaseException as exc:  # handed to the consumer, who re-raises it
                put(exc)
            finally:
                put(_DONE)

        threading.Thread(target=work, name="specs-search", daemon=True).start()
        return cancel

    def _prepare(self, prompt: Prompt, method: str, config: ConfigLike, budget: Budget,
                 model: str, stop: Optional[Sequence[str]],
                 on_event: Optional[Callable[[Event], None]],
                 cancel: Optional[threading.Event], *, timer: RunClock,
                 call: Optional[CallContext] = None) -> SearchRun:
        _check_prompt(prompt)
        config = _as_settings(SpecsConfig, config, "config")
        roles = self._roles_for(method, model)
        stop = _check_stop(stop)
        reward = self.reward if "reward" in get_method(method).needs else None  # greedy: none
        if isinstance(reward, TargetProbe) and "target" not in roles:
            roles.append("target")  # the probe reads the beams through the target's own forward
        prompt_ids = {role: self._encode_checked(role, prompt) for role in roles}
        pass_ids = self._pass_ids(config, roles)
        return SearchRun(
            Roles(self.draft, self.target, reward, self._executor),
            prompt_ids, question_of(prompt), config, budget,
            pass_ids=pass_ids, stop=stop, timer=timer, on_event=on_event,
            slots=config.n if get_method(method).answer_per_candidate else None,
            cancel=cancel, call=call,
        )

    def _roles_for(self, method: str, model: str) -> list[str]:
        """The language-model roles a method uses, after checking every one exists."""
        needs = get_method(method).roles(model)
        if model not in MODEL_ROLES:
            raise ConfigError(f"model={model!r} is not allowed: model must be 'draft' or 'target'")
        present = {"draft": self.draft, "target": self.target, "reward": self.reward}
        missing = [role for role in needs if present[role] is None]
        if missing:
            raise ConfigError(
                f"method={method!r} needs a {' and a '.join(missing)} model, "
                "but this engine was built without one"
            )
        return [role for role in needs if role != "reward"]

    def _encode_checked(self, role: str, prompt: Prompt) -> list[int]:
        lm = self.draft if role == "draft" else self.target
        ids = lm.encode_prompt(prompt)
        if len(ids) >= lm.context_window:
            raise ConfigError(
                f"prompt is {len(ids)} tokens but the {role} model {lm.name!r} accepts at most "
                f"{lm.context_window} tokens in all; shorten the prompt"
            )
        return ids

    def _pass_ids(self, config: SpecsConfig, roles: list[str]) -> bool:
        """Whether draft token ids may go to the target unchanged."""
        if len(roles) < 2:
            return True
        same = self.draft.tokenizer_fingerprint == self.target.tokenizer_fingerprint
        if config.token_passing == "ids" and not same:
            raise ConfigError(
                f"token_passing='ids' needs one tokenizer, but draft {self.draft.name!r} and target "
                f"{self.target.name!r} tokenize differently; use token_passing='auto' or 'text'"
            )
        return same and config.token_passing != "text"


def _check_probe_target(reward: Optional[RewardModel], target: Optional[LanguageModel]) -> None:
    """A reward that reads the target's states must read this engine's target."""
    if not isinstance(reward, TargetProbe) or (reward.target is not None and reward.target is target):
        return
    if reward.target is None:
        raise ConfigError(
            f"reward {reward.name!r} reads the target's hidden states but is attached to no target: "
            "pass reward=probe.attach(target, target_location), or build the engine with "
            "SpecsEngine.from_pretrained(target=..., reward=...)"
        )
    raise ConfigError(
        f"reward {reward.name!r} is attached to target {reward.target.name!r}, but this engine's "
        f"target is {getattr(target, 'name', None)!r}: attach it to the engine's target"
    )


def _as_reward_model(reward: Optional[RewardLike]) -> Optional[RewardModel]:
    if reward is None or isinstance(reward, RewardModel):
        return reward
    if callable(reward):
        from specs_engine.rewards.callable_reward import CallableReward

        return CallableReward(reward)
    raise ConfigError(
        f"reward={reward!r} is not allowed: pass a RewardModel or a callable (question, steps) -> float"
    )


def _as_settings(kind: type, value: Any, argument: str) -> Any:
    """A SpecsConfig or Budget from one, a dict of its fields, or None (the defaults)."""
    if value is None:
        return kind()
    if isinstance(value, kind):
        return value
    if isinstance(value, Mapping):
        return build(kind, value)
    raise ConfigError(f"{argument}={value!r} is not allowed: pass a {kind.__name__}, a dict or None")


ROLES = ("system", "user", "assistant", "tool")
"""Chat roles the models' chat templates render."""


def _check_prompt(prompt: Prompt) -> None:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ConfigError("prompt is empty: pass a non-empty string or chat messages")
        return
    if not (isinstance(prompt, Sequence) and prompt and all(
        isinstance(m, Mapping) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in prompt
    )):
        raise ConfigError(
            f"prompt={prompt!r:.80} is not allowed: pass a non-empty string or a non-empty list "
            "of {'role': str, 'content': str} messages"
        )
    for i, message in enumerate(prompt):
        if message["role"] not in ROLES:
            raise ConfigError(f"prompt[{i}]['role']={message['role']!r} is not allowed: "
                              f"roles are {', '.join(ROLES)}")
        if not message["content"].strip():
            raise ConfigError(f"prompt[{i}]['content'] is blank: every message needs text")


def _check_stop(stop: Optional[Sequence[str]]) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str) or not all(isinstance(s, str) and s for s in stop):
        raise ConfigError(f"stop={stop!r} is not allowed: pass a list of non-empty strings")
    return tuple(stop)
