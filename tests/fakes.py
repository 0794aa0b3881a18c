"""Scripted stand-ins for the model roles, so wrapper logic is tested in milliseconds.

A fake proposes the next step of a script with chosen log-probs; text is tokenised one
character per token, so draft token ids reach the target unchanged (shared fingerprint).
Steps may contain "{q}", replaced by the prompt's last line, so concurrent calls are told
apart.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Callable, Sequence

from specs_engine.engine import SpecsEngine
from specs_engine.models import Candidate, Prompt, ProposalParams

PROMPT_END = "\x00"
"""Appended to every encoded prompt: the fake counts steps written after it."""


def _ids(text: str) -> list[int]:
    return [ord(c) for c in text]


def _text(ids: Sequence[int]) -> str:
    return "".join(chr(i) for i in ids)


def prompt_text(prompt: Prompt) -> str:
    """A prompt as flat text (chat messages as 'role: content' lines)."""
    if isinstance(prompt, str):
        return prompt
    return "".join(f"{m['role']}: {m['content']}\n" for m in prompt)


class FakeLM:
    """A LanguageModel that writes `steps` in order, one per round, whatever it is asked.

    token_logprob is the log-prob it reports for each sampled token and the one it
    gives when scoring, so the soft-verification log-ratio is chosen by the test.
    delay_s is slept per propose call (a slow model); calls counts propose calls.
    """

    def __init__(
        self,
        name: str,
        steps: Sequence[str],
        token_logprob: float = -0.1,
        delay_s: float = 0.0,
        context_window: int = 4096,
    ):
        self.name = name
        self.context_window = context_window
        self.tokenizer_fingerprint = "fake-chars"
        self.steps = list(steps)
        self.token_logprob = token_logprob
        self.delay_s = delay_s
        self.calls = 0
        self._lock = threading.Lock()

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        return _ids(prompt_text(prompt) + PROMPT_END)

    def encode(self, text: str) -> list[int]:
        return _ids(text)

    def propose(
        self, prefixes: Sequence[Sequence[int]], num_candidates: int, params: ProposalParams
    ) -> list[list[Candidate]]:
        with self._lock:
            self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        return [[self._next(prefix, params)] * num_candidates for prefix in prefixes]

    def score(
        self, prefixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
        *, deadline: float | None = None,
    ) -> list[list[float]]:
        return [[self.token_logprob] * len(c) for c in continuations]

    def _next(self, prefix: Sequence[int], params: ProposalParams) -> Candidate:
        prompt, _, written = _text(prefix).rpartition(PROMPT_END)
        index = written.count(params.delimiter)
        text = self.steps[min(index, len(self.steps) - 1)].replace("{q}", _last_line(prompt))
        last = index >= len(self.steps) - 1
        text, reason = _cut(text, params, "eos" if last else "delimiter")
        ids = tuple(_ids(text))
        return Candidate(ids, text, (self.token_logprob,) * len(ids), reason)


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


class FakeReward:
    """A RewardModel returning reward(question, steps) (a constant by default)."""

    def __init__(
        self, reward: float | Callable[[str, Sequence[str]], float] = 0.9, name: str = "fake-prm"
    ):
        self.name = name
        self._reward = reward
        self.calls = 0

    def score(self, question: str, solutions: Sequence[Sequence[str]]) -> list[float]:
        self.calls += 1
        if callable(self._reward):
            return [float(self._reward(question, steps)) for steps in solutions]
        return [float(self._reward)] * len(solutions)


DRAFT_STEPS = ("Draft thinks about {q}.\n\n", "So the answer is 42.\n\n", "#### 42")
TARGET_STEPS = ("Target thinks about {q}.\n\n", "Target checks it.\n\n", "#### 42")


def fake_roles(
    delay_s: float = 0.0, reward: float = 0.9
) -> tuple[FakeLM, FakeLM, FakeReward]:
    """A draft the target agrees with (equal log-probs), a target, and a constant PRM."""
    draft = FakeLM("fake-draft", DRAFT_STEPS, delay_s=delay_s)
    target = FakeLM("fake-target", TARGET_STEPS, delay_s=delay_s)
    return draft, target, FakeReward(reward)


class RecordingEngine(SpecsEngine):
    """A SpecsEngine that records the arguments of every search, so a test sees exactly
    which method, config, budget and stop strings reached the engine (stream, agenerate
    and astream all end in generate)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[dict] = []
        self._calls_lock = threading.Lock()

    def generate(self, prompt, method="specs", config=None, budget=None, **kwargs):
        with self._calls_lock:
            self.calls.append(dict(prompt=prompt, method=method, config=config, budget=budget,
                                   **{k: kwargs.get(k) for k in ("model", "stop")}))
        return super().generate(prompt, method, config, budget, **kwargs)


def fake_engine(delay_s: float = 0.0, reward: float = 0.9) -> RecordingEngine:
    """An engine over fake_roles(): answers '#### 42' in three steps."""
    return RecordingEngine(*fake_roles(delay_s=delay_s, reward=reward))


def count_loads(monkeypatch) -> list[dict]:
    """Replaces model loading by a recorder that hands out fake engines; returns the
    list of load calls (the integrations' process-wide engine cache starts empty)."""
    from specs_integrations import _settings

    loads: list[dict] = []

    def from_pretrained(**kwargs) -> SpecsEngine:
        loads.append(kwargs)
        return fake_engine()

    monkeypatch.setattr(_settings.SpecsEngine, "from_pretrained", staticmethod(from_pretrained))
    monkeypatch.setattr(_settings, "_ENGINES", {})
    return loads


async def ticks_during(coro):
    """Awaits coro while a ticker runs every 5 ms; returns (result, ticks). A call that
    blocks the event loop lets the ticker run about once."""
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    try:
        return await coro, ticks
    finally:
        done.set()
        await task
