"""The knobs of a search (SpecsConfig) and the limits of one call (Budget).

Both validate themselves on construction, so a bad value fails before any model runs,
with a message naming the argument, the value and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, Mapping, TypeVar

from specs_engine.errors import ConfigError
from specs_engine.tool_calls import StructureCheck

LOG_RATIOS = ("sum", "mean")
FINAL_SELECTIONS = ("last_reward", "weighted_vote")
TOKEN_PASSING = ("auto", "ids", "text")
STARTS = ("target", "draft")


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{name}={value!r} is not allowed: {name} must be {allowed}")


def _check_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        _fail(name, value, "a number")


@dataclass(frozen=True)
class SpecsConfig:
    """How the search runs. Defaults follow the paper's algorithm (the README's "The
    search"); accept_threshold was tuned for the built-in preset."""

    n: int = 4
    """Candidates proposed per step, over all live beams."""
    beam_width: int = 4
    """Candidates that share one parent beam; n // beam_width beams are kept."""
    beta: float = 20.0
    """Weight of the reward in the soft-verification score beta * r + log_ratio. With a
    reward in [0, 1] it must be large to matter against a log-ratio summed over a step:
    at beta 4 the reward moved a score by at most 4 nats and SPECS accepted 93% of draft
    rounds whatever the reward said (benchmarks/results/tune-levers, tune split)."""
    accept_threshold: float = 10.0
    """A draft candidate survives when its soft-verification score exceeds this. With beta
    20: a step the reward is sure of (r = 1) survives unless the target finds it 10 nats
    less likely than the draft did; one at r = 0.5 needs the target to like it at least as
    much as the draft; below r = 0.5 the target must like it more. Chosen on the GSM8K
    tune split for the built-in preset (benchmarks/tune_levers.sh): against beta 4 / -6 and
    beta 10 / 0 it rejected 15% of draft rounds instead of 7%, solved 15 of 24 instead of
    14, and lost 2 of the problems target beam search solved instead of 4."""
    tau: float = 0.5
    """After a target round, switch to draft mode when the best reward exceeds tau."""
    start: Literal["target", "draft"] = "target"
    """Which model writes SPECS' first step. The paper starts with the target: the first
    step sets the plan, and its reward decides whether the draft takes over; "draft"
    saves that target round when the draft's plans can be trusted."""
    target_candidates: int | None = None
    """Candidates the target writes per beam in a SPECS target round; None: as many as
    the draft does (n over the live beams, the paper). A target round keeps at most one
    beam per candidate, so 1 from the root leaves one beam until a draft round widens it
    again. Why fewer can pay: where sequences decode in parallel for free (a GPU) extra
    target candidates cost little, but on a 2-core CPU four sequences are compute-bound:
    one decode step of the preset's 1.5B took 90.6 ms for 4 sequences against 29.5 ms for
    1 (benchmarks/results/llamacpp_bench.json)."""
    rsd_threshold: float = 0.5
    """rsd only: a draft step is accepted when its reward is at least this."""
    temperature: float = 0.7
    """Sampling temperature of the proposing model. 0 means greedy proposals: one
    candidate per step (n must be 1), the draft's greedy step soft-verified and, when
    rejected, replaced by the target's greedy step; nothing is sampled, so the same call
    gives the same answer twice without a seed on the same engine, up to floating-point
    near-ties that a different prefix-cache history can flip (see the README). (The
    greedy method ignores it.)"""
    top_p: float = 1.0
    """Nucleus sampling mass of the proposing model, in (0, 1]."""
    selection_temperature: float = 1.0
    """Temperature of softmax(score / t) used to sample survivors; not the sampling one."""
    log_ratio: Literal["sum", "mean"] = "sum"
    """How per-token log p_target - log p_draft are combined over a step."""
    final_selection: Literal["last_reward", "weighted_vote"] = "last_reward"
    """How completed beams are ranked: the last step's reward, or a reward-weighted vote
    (rewards are then vote weights and must be >= 0)."""
    delimiter: str = "\n\n"
    """Text that ends a reasoning step."""
    max_step_tokens: int = 128
    """Most tokens one step may take before it is cut."""
    token_passing: Literal["auto", "ids", "text"] = "auto"
    """auto: pass draft token ids to the target when tokenizers match, else re-tokenise text;
    ids: require matching tokenizers (an error otherwise); text: always re-tokenise."""
    seed: int | None = None
    """Fixed seed: the same call gives the same result twice."""
    structure: StructureCheck | None = None
    """Structural verification (tool calls, JSON replies): a candidate whose solution
    fails it is never accepted, and one that completes it (a valid tool call) ends its
    solution. A draft round left without a valid candidate defers to the target; a round
    that cannot defer keeps its best candidates and the caller sees the failure when it
    parses the answer. None: no check."""

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.type in ("int", "int | None") and getattr(self, f.name) is not None:
                value = getattr(self, f.name)
                if isinstance(value, bool) or not isinstance(value, int):
                    _fail(f.name, value, "an integer")
            if f.type == "float":
                _check_number(f.name, getattr(self, f.name))
                # inf turns scores into inf - inf = nan (accept_threshold=-inf: accept all)
                if f.name != "accept_threshold" and math.isinf(getattr(self, f.name)):
                    _fail(f.name, getattr(self, f.name), "a finite number")
        if self.n < 1:
            _fail("n", self.n, "an integer >= 1")
        if self.beam_width < 1 or self.n % self.beam_width:
            _fail("beam_width", self.beam_width, f"an integer >= 1 that divides n={self.n}")
        if self.beta < 0:
            _fail("beta", self.beta, "a number >= 0")
        if self.selection_temperature <= 0:
            _fail("selection_temperature", self.selection_temperature, "a number > 0")
        if self.temperature < 0:
            _fail("temperature", self.temperature, "a number >= 0 (0: greedy proposals)")
        if self.temperature == 0 and self.n != 1:
            _fail("temperature", self.temperature, f"> 0 when n={self.n}: temperature=0 proposes "
                  "greedily, so the n candidates would be identical; use n=1, beam_width=1")
        if not 0 < self.top_p <= 1:
            _fail("top_p", self.top_p, "a number in (0, 1]")
        if not math.isfinite(self.accept_threshold) and self.accept_threshold != -math.inf:
            _fail("accept_threshold", self.accept_threshold, "a finite number or -inf")
        if self.target_candidates is not None and self.target_candidates < 1:
            _fail("target_candidates", self.target_candidates, "an integer >= 1 or None")
        if self.max_step_tokens < 1:
            _fail("max_step_tokens", self.max_step_tokens, "an integer >= 1")
        self._check_choice("log_ratio", LOG_RATIOS)
        self._check_choice("final_selection", FINAL_SELECTIONS)
        self._check_choice("token_passing", TOKEN_PASSING)
        self._check_choice("start", STARTS)
        if self.structure is not None and not isinstance(self.structure, StructureCheck):
            _fail("structure", self.structure, "a StructureCheck or None")
        if not isinstance(self.delimiter, str) or not self.delimiter:
            _fail("delimiter", self.delimiter, "a non-empty string")

    def _check_choice(self, name: str, allowed: tuple[str, ...]) -> None:
        if getattr(self, name) not in allowed:
            _fail(name, getattr(self, name), f"one of {', '.join(allowed)}")

    @property
    def num_beams(self) -> int:
        """Beams kept after each step."""
        return self.n // self.beam_width

    def with_overrides(self, **overrides: Any) -> SpecsConfig:
        """A validated copy with some knobs changed; unknown names are refused by name."""
        _check_names(SpecsConfig, overrides)
        return replace(self, **overrides)


@dataclass(frozen=True)
class Budget:
    """The limits of one call. Any field left None is unlimited, except that a search
    always stops after max_steps steps and max_new_tokens tokens per beam."""

    latency_s: float | None = None
    """Wall-clock seconds from the start of the call; the result comes back by then
    (plus a small measured overrun) with the best answer found so far."""
    max_steps: int = 16
    """Most reasoning steps per beam."""
    max_new_tokens: int = 512
    """Most generated tokens per beam."""

    def __post_init__(self) -> None:
        if self.latency_s is not None:
            _check_number("latency_s", self.latency_s)
            if self.latency_s <= 0 or math.isinf(self.latency_s):
                _fail("latency_s", self.latency_s, "a finite number of seconds > 0, or None")
        for name in ("max_steps", "max_new_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                _fail(name, value, "an integer >= 1")


Settings = TypeVar("Settings", SpecsConfig, Budget)


def build(kind: type[Settings], settings: Mapping[str, Any]) -> Settings:
    """kind(**settings), validated; an unknown name is refused with the known ones (a bare
    TypeError would name neither)."""
    _check_names(kind, settings)
    return kind(**settings)


def from_settings(settings: Mapping[str, Any]) -> tuple[SpecsConfig, Budget]:
    """Flat settings (CLI flags, an integration's fields) as a validated SpecsConfig and
    Budget: each name goes to the one that declares it, each value is checked once, by it.
    The one place flat knobs become a search's settings, so every entry point refuses
    the same values with the same message."""
    config_names, budget_names = _names(SpecsConfig), _names(Budget)
    unknown = [name for name in settings if name not in config_names + budget_names]
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {unknown}; SpecsConfig fields: {', '.join(config_names)}; "
            f"Budget fields: {', '.join(budget_names)}"
        )
    return (build(SpecsConfig, {k: v for k, v in settings.items() if k in config_names}),
            build(Budget, {k: v for k, v in settings.items() if k in budget_names}))


def _names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(kind))


def _check_names(kind: type, settings: Mapping[str, Any]) -> None:
    unknown = sorted(set(settings) - set(_names(kind)))
    if unknown:
        raise ConfigError(
            f"unknown {kind.__name__} field(s) {unknown}; known fields: {', '.join(_names(kind))}"
        )
