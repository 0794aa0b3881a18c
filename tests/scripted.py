"""Scripted models for exact tests of the search logic.

Each step offers a menu of candidate texts; a candidate's draft log-prob, target
log-prob and reward are looked up by its text, so a test chooses every number the
soft-verification rule sees. One character is one token. A fake clock lets deadline
tests run in microseconds while each model call "costs" what the test says.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from fakes import PROMPT_END, prompt_text
from specs_engine.models import Candidate, Prompt, ProposalParams


class FakeClock:
    """A monotonic clock that only moves when a model call says it took time."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@dataclass
class ScriptedLM:
    """menu(step_index) lists candidate texts; candidate j of a prefix is drawn uniformly
    (seeded by ProposalParams.seed) unless `in_order`, when it is menu[j % len(menu)].
    logprob[text] is the per-token log-prob reported when proposing and scoring."""

    name: str
    menu: Callable[[int], Sequence[str]]
    logprob: Mapping[str, float] = field(default_factory=dict)
    default_logprob: float = -0.5
    in_order: bool = True
    fingerprint: str = "chars"
    context_window: int = 10_000
    clock: FakeClock | None = None
    propose_cost: float = 0.0
    score_cost: float = 0.0
    fail_at_call: int | None = None
    propose_calls: int = 0
    score_calls: int = 0

    @property
    def tokenizer_fingerprint(self) -> str:
        return self.fingerprint

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        return [ord(c) for c in prompt_text(prompt) + PROMPT_END]

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def propose(
        self, prefixes: Sequence[Sequence[int]], num_candidates: int, params: ProposalParams
    ) -> list[list[Candidate]]:
        self.propose_calls += 1
        if self.fail_at_call == self.propose_calls:
            raise RuntimeError("out of memory (scripted)")
        if self.clock:
            self.clock.advance(self.propose_cost)
        rng = random.Random(params.seed)
        return [[self._candidate(p, j, rng, params) for j in range(num_candidates)] for p in prefixes]

    def score(
        self, prefixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
        *, deadline: float | None = None,
    ) -> list[list[float]]:
        self.score_calls += 1
        if self.clock:
            self.clock.advance(self.score_cost)
        return [[self._lp("".join(map(chr, c)))] * len(c) for c in continuations]

    def _lp(self, text: str) -> float:
        return self.logprob.get(text, self.default_logprob)

    def _candidate(self, prefix: Sequence[int], j: int, rng: random.Random, params: ProposalParams) -> Candidate:
        written = "".join(map(chr, prefix)).rpartition(PROMPT_END)[2]
        menu = list(self.menu(written.count(params.delimiter)))
        text = menu[j % len(menu)] if self.in_order else rng.choice(menu)
        reason = "delimiter" if text.endswith(params.delimiter) else "eos"
        ids = tuple(ord(c) for c in text)
        return Candidate(ids, text, (self._lp(text),) * len(ids), reason)


class TableReward:
    """Reward looked up by the last step's text; unknown steps get `default`."""

    name = "table-prm"

    def __init__(self, table: Mapping[str, float], default: float = 0.5):
        self.table, self.default, self.calls = dict(table), default, 0

    def score(self, question: str, solutions: Sequence[Sequence[str]]) -> list[float]:
        self.calls += 1
        return [self.table.get(steps[-1], self.default) for steps in solutions]
