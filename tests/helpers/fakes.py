"""A scripted engine for the integration tests: fixed draft and target scripts that agree,
an engine that records what reached it, and helpers for model loads and event-loop ticks."""

from __future__ import annotations

import asyncio
import threading

from tests.helpers.scripted import FakeClock, ScriptedLM, ScriptedReward, script_lm
from specs_engine.engine import SpecsEngine

DRAFT_STEPS = ("Draft thinks about {q}.\n\n", "So the answer is 42.\n\n", "#### 42")
TARGET_STEPS = ("Target thinks about {q}.\n\n", "Target checks it.\n\n", "#### 42")


def fake_roles(
    delay_s: float = 0.0, reward: float = 0.9, clock: FakeClock | None = None, cost_s: float = 0.0,
) -> tuple[ScriptedLM, ScriptedLM, ScriptedReward]:
    """A draft the target agrees with (equal log-probs), a target, and a constant PRM.
    delay_s really sleeps in each proposal (for concurrency tests); cost_s moves `clock`."""
    timing = dict(delay_s=delay_s, clock=clock, propose_cost=cost_s)
    draft = script_lm("fake-draft", DRAFT_STEPS, default_logprob=-0.1, **timing)
    target = script_lm("fake-target", TARGET_STEPS, default_logprob=-0.1, **timing)
    return draft, target, ScriptedReward(reward, name="fake-prm")


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


def fake_engine(delay_s: float = 0.0, reward: float = 0.9, cost_s: float = 0.0) -> RecordingEngine:
    """An engine over fake_roles(): answers '#### 42' in three steps. With cost_s, the
    engine runs on a fake clock and each proposal costs cost_s seconds of it (deadline
    tests in microseconds, exact on a loaded machine)."""
    if not cost_s:
        return RecordingEngine(*fake_roles(delay_s=delay_s, reward=reward))
    clock = FakeClock()
    return RecordingEngine(*fake_roles(delay_s, reward, clock, cost_s), clock=clock)


def count_loads(monkeypatch) -> list[dict]:
    """Replaces model loading by a recorder that hands out fake engines; returns the
    list of load calls (the process-wide model and engine cache starts empty, and the
    real one is back after the test)."""
    from specs_engine import backends
    from specs_integrations import _settings

    loads: list[dict] = []

    def from_pretrained(**kwargs) -> SpecsEngine:
        loads.append(kwargs)
        return fake_engine()

    monkeypatch.setattr(_settings.SpecsEngine, "from_pretrained", staticmethod(from_pretrained))
    monkeypatch.setattr(backends, "_cache", {})
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
