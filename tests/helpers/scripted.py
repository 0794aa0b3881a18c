"""Scripted models: the search logic and the wrappers tested in milliseconds.

Each step offers a menu of candidate texts; a candidate's draft log-prob, target
log-prob and reward are looked up by its text, so a test chooses every number the
soft-verification rule sees. One character is one token, so draft token ids reach the
target unchanged (shared fingerprint). A step may contain "{q}", replaced by the prompt's
last line, so concurrent calls are told apart. A fake clock lets deadline tests run in
microseconds while each model call "costs" what the test says; delay_s really sleeps.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

from specs_engine.models import Candidate, Prompt, ProposalParams

PROMPT_END = "\x00"
"""Appended to every encoded prompt: the scripted model counts steps written after it."""


def prompt_text(prompt: Prompt) -> str:
    """A prompt as flat text (chat messages as 'role: content' lines)."""
    if isinstance(prompt, str):
        return prompt
    return "".join(f"{m['role']}: {m['content']}\n" for m in prompt)


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
    cut_at_deadline: bool = False
    """Decode as a real backend does under a deadline: a call that would end past
    params.deadline stops there, each candidate one token long, ended "deadline"."""
    delay_s: float = 0.0
    fail_at_call: int | None = None
    propose_calls: int = 0
    score_calls: int = 0
    candidates_asked: list[int] = field(default_factory=list)
    """num_candidates of each propose call, in order."""

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
        self.candidates_asked.append(num_candidates)
        if self.fail_at_call == self.propose_calls:
            raise RuntimeError("out of memory (scripted)")
        now = self.clock() if self.clock else time.monotonic()  # the engine's clock gives the deadline
        room = math.inf if params.deadline is None else params.deadline - now
        cut = self.cut_at_deadline and room < self.propose_cost
        if self.clock:
            self.clock.advance(max(room, 0.0) if cut else self.propose_cost)
        if self.delay_s:
            time.sleep(self.delay_s)
        rng = random.Random(params.seed)
        batches = [[self._candidate(p, j, rng, params) for j in range(num_candidates)] for p in prefixes]
        if cut:  # a real decode writes the first token before it looks at the clock
            return [[_first_token(c) for c in batch] for batch in batches]
        return batches

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
        prompt, _, written = "".join(map(chr, prefix)).rpartition(PROMPT_END)
        menu = list(self.menu(written.count(params.delimiter)))
        text = menu[j % len(menu)] if self.in_order else rng.choice(menu)
        text = text.replace("{q}", _last_line(prompt))
        text, reason = _cut(text, params, "delimiter" if text.endswith(params.delimiter) else "eos")
        ids = tuple(ord(c) for c in text)
        return Candidate(ids, text, (self._lp(text),) * len(ids), reason)


def _first_token(candidate: Candidate) -> Candidate:
    return replace(candidate, token_ids=candidate.token_ids[:1], text=candidate.text[:1],
                   token_logprobs=candidate.token_logprobs[:1], finish_reason="deadline")


def _last_line(prompt: str) -> str:
    """What "{q}" becomes: the prompt's last line, short and free of step delimiters."""
    lines = prompt.strip().splitlines() or [""]
    return lines[-1].strip()[:60]


def _cut(text: str, params: ProposalParams, reason: str) -> tuple[str, str]:
    """Apply stop strings and the token limit the way a real backend would."""
    for stop in params.stop:
        if stop in text:
            return text[: text.index(stop)], "stop"
    if len(text) > params.max_new_tokens:
        return text[: params.max_new_tokens], "length"
    return text, reason


class OtherTokenizerLM(ScriptedLM):
    """A ScriptedLM with another tokenizer: token id = character code + SHIFT, so a text
    encodes to different ids than in ScriptedLM. Ids another model wrote reach it as
    characters below SHIFT and are refused, so a test sees whether text or ids came in.
    `scored` records the continuations it scored, as text."""

    SHIFT = 1000

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scored: list[str] = []

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        return [i + self.SHIFT for i in super().encode_prompt(prompt)]

    def encode(self, text: str) -> list[int]:
        return [i + self.SHIFT for i in super().encode(text)]

    def propose(self, prefixes, num_candidates, params):
        answers = super().propose([self._own(p) for p in prefixes], num_candidates, params)
        return [[replace(c, token_ids=tuple(i + self.SHIFT for i in c.token_ids)) for c in row]
                for row in answers]

    def score(self, prefixes, continuations, *, deadline=None):
        own = [self._own(c) for c in continuations]
        self.scored.extend("".join(map(chr, c)) for c in own)
        return super().score([self._own(p) for p in prefixes], own, deadline=deadline)

    def _own(self, ids: Sequence[int]) -> list[int]:
        if any(i < self.SHIFT for i in ids):
            raise ValueError(f"token ids {list(ids)[:5]}... are not this tokenizer's")
        return [i - self.SHIFT for i in ids]


def script_lm(name: str, steps: Sequence[str], **kwargs) -> ScriptedLM:
    """A ScriptedLM that writes `steps` in order, one per round, whatever it is asked
    (the last one repeats)."""
    return ScriptedLM(name, lambda i: [steps[min(i, len(steps) - 1)]], **kwargs)


class ScriptedReward:
    """A RewardModel returning reward(question, steps), a constant, or table[last step]
    (`default` for steps not in the table)."""

    def __init__(
        self,
        reward: float | Mapping[str, float] | Callable[[str, Sequence[str]], float] = 0.9,
        default: float = 0.5,
        name: str = "scripted-prm",
    ):
        self.name, self.calls = name, 0
        if isinstance(reward, Mapping):
            table = dict(reward)
            self._reward = lambda question, steps: table.get(steps[-1], default)
        elif callable(reward):
            self._reward = reward
        else:
            self._reward = lambda question, steps: reward

    def score(self, question: str, solutions: Sequence[Sequence[str]]) -> list[float]:
        self.calls += 1
        return [float(self._reward(question, steps)) for steps in solutions]
