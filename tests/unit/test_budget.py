"""The budget covers everything a call does: encoding and the reward count, a reward slower
than the deadline is cut and its round salvaged, best_of_n ranks by reward when cut. Fake
clocks and scripted models; a real wait only where a reward blocks until released. A
stream's clock starts when stream() is called, not at its first event."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tests.helpers.scripted import FakeClock, ScriptedLM, ScriptedReward

from specs_engine import SpecsEngine
from specs_engine.config import Budget, SpecsConfig

STEPS = lambda i: ["step one\n\n", "step two\n\n", "done \\boxed{1}"][min(i, 2)]  # noqa: E731


def lm(name: str, clock: FakeClock, **kwargs) -> ScriptedLM:
    return ScriptedLM(name, lambda i: [STEPS(i)], clock=clock, **kwargs)


class SlowEncoding(ScriptedLM):
    """Encoding the prompt takes 2 s on the fake clock (a slow remote /tokenize)."""

    def encode_prompt(self, prompt):
        self.clock.advance(2.0)
        return super().encode_prompt(prompt)


def test_the_clock_starts_at_entry_so_prompt_encoding_counts():
    clock = FakeClock()
    model = SlowEncoding("m", lambda i: [STEPS(i)], clock=clock, propose_cost=0.1)
    engine = SpecsEngine(target=model, clock=clock)
    result = engine.generate("q", "greedy", budget=Budget(latency_s=1.0))
    assert result.stats.wall_s == pytest.approx(2.0)  # the encoding is in the call's time
    assert result.stop_reason == "latency" and model.propose_calls == 0  # and spent its budget


def test_a_reward_slower_than_the_deadline_is_cut_and_the_round_salvaged():
    clock = FakeClock()
    release = threading.Event()

    def stuck(question, steps):  # a Python callable reward that hangs (5 s at most)
        release.wait(5)
        return 1.0

    engine = SpecsEngine(target=lm("t", clock, propose_cost=0.9), reward=stuck, clock=clock)
    started = time.monotonic()
    try:
        result = engine.generate("q", "beam_search", SpecsConfig(n=2, beam_width=2),
                                 Budget(latency_s=1.0))
    finally:
        release.set()
    assert time.monotonic() - started < 2.0  # the search stopped waiting at the deadline
    assert result.stats.reward_cut and result.stop_reason == "latency"
    assert [s.reward for s in result.steps] == [None] and result.text == "step one\n\n"


def test_best_of_n_ranks_its_samples_by_reward_even_when_the_deadline_cuts_it():
    clock = FakeClock()
    menu = lambda i: ["good\n\n", "bad\n\n"] if i == 0 else ["more\n\n"]  # noqa: E731
    model = ScriptedLM("m", menu, clock=clock, propose_cost=0.4)
    reward = ScriptedReward({"good\n\n": 0.9, "bad\n\n": 0.1})
    engine = SpecsEngine(target=model, reward=reward, clock=clock)
    result = engine.generate("q", "best_of_n", SpecsConfig(n=2, beam_width=2),
                             Budget(latency_s=1.0, max_steps=50))
    assert result.stop_reason == "latency"
    assert result.steps[0].text == "good\n\n" and result.steps[0].reward == 0.9


def test_rewards_cut_at_the_deadline_do_not_starve_later_calls_target_scoring():
    clock = FakeClock()
    release, hanging = threading.Event(), [True]

    def reward(question, steps):  # hangs while `hanging` (a Python callable cannot be stopped)
        if hanging[0]:
            release.wait(30)
        return 1.0

    draft, target = lm("d", clock, propose_cost=0.99), lm("t", clock, propose_cost=0.99)
    engine = SpecsEngine(draft=draft, target=target, reward=reward, clock=clock)
    try:
        for _ in range(20):  # more cut rewards than the engine's pool has threads
            cut = engine.generate("q", "beam_search", SpecsConfig(n=1, beam_width=1),
                                  Budget(latency_s=1.0))
            assert cut.stats.reward_cut
        hanging[0] = False
        draft.propose_cost = target.propose_cost = 0.1
        result = engine.generate("q", "specs", SpecsConfig(n=2, beam_width=2), Budget(latency_s=2.0))
    finally:
        release.set()
    assert not result.stats.reward_cut and result.stats.target_scored_tokens > 0


@pytest.mark.parametrize("kind", ["stream", "astream"])
def test_a_streams_clock_starts_when_stream_is_called_not_at_the_first_event(kind):
    clock = FakeClock()
    model = lm("m", clock, propose_cost=0.1)
    engine = SpecsEngine(target=model, clock=clock)
    events = getattr(engine, kind)("q", "greedy", budget=Budget(latency_s=1.0))
    clock.advance(2.0)  # the caller holds the iterator 2 s before reading it
    if kind == "stream":
        final = list(events)[-1]
    else:
        async def drain():
            return [event async for event in events][-1]
        final = asyncio.run(drain())
    assert final.result.stats.wall_s == pytest.approx(2.0)
    assert final.result.stop_reason == "latency" and model.propose_calls == 0
