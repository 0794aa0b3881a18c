"""The budget under load and faults on tiny real models and the fake vLLM server: queueing
for a shared model counts and ends at the deadline, an in-process reward stops between
sequences, hung /tokenize, /classify and /v1/models, and load time reported apart."""

from __future__ import annotations

import threading
import time

import pytest

from tests.helpers.fake_http import serving
from tests.helpers.scripted import FakeClock, ScriptedLM
from tests.integration.test_openai_reward import FakeRewardServer

from specs_engine import SpecsEngine
from specs_engine.backends.openai.lm import OpenAILM
from specs_engine.backends.openai.reward import OpenAISequenceClassifierReward
from specs_engine.call_context import CallContext, opened
from specs_engine.config import Budget, SpecsConfig
from specs_engine.errors import DeadlineExceededError, ServerUnavailableError

STEPS = lambda i: ["step one\n\n", "step two\n\n", "done \\boxed{1}"][min(i, 2)]  # noqa: E731


def lm(name: str, clock: FakeClock, **kwargs) -> ScriptedLM:
    return ScriptedLM(name, lambda i: [STEPS(i)], clock=clock, **kwargs)


def test_waiting_for_a_model_another_call_holds_is_queue_time(tiny_draft_dir):
    from specs_engine.backends.hf.lm import TransformersLM

    model = TransformersLM.from_pretrained(tiny_draft_dir, dtype="float32")
    engine = SpecsEngine(target=model)
    held = threading.Event()

    def other_call() -> None:  # holds the model the way a concurrent call's prefill does
        with model.lock:
            held.set()
            time.sleep(0.3)

    threading.Thread(target=other_call).start()
    held.wait()
    result = engine.generate("q", "greedy", budget=Budget(max_steps=1, max_new_tokens=2))
    assert result.stats.queue_s >= 0.25
    assert result.stats.wall_s >= result.stats.queue_s


def test_a_call_queued_behind_another_stops_waiting_at_its_deadline(tiny_draft_dir):
    from specs_engine.backends.hf.lm import TransformersLM

    model = TransformersLM.from_pretrained(tiny_draft_dir, dtype="float32")
    held, release = threading.Event(), threading.Event()

    def other_call() -> None:  # holds the model until the test ends (5 s at most)
        with model.lock:
            held.set()
            release.wait(5)

    threading.Thread(target=other_call).start()
    held.wait()
    started = time.monotonic()
    try:
        result = SpecsEngine(target=model).generate("q", "greedy", budget=Budget(latency_s=0.3))
    finally:
        release.set()
    assert time.monotonic() - started < 2.0
    assert result.stop_reason == "latency" and result.budget_exhausted and result.text == ""


def test_an_in_process_reward_stops_between_sequences_at_the_deadline(tiny_draft_dir):
    from specs_engine.backends.hf.lm import TransformersLM

    model = TransformersLM.from_pretrained(tiny_draft_dir, dtype="float32")
    with opened(CallContext(deadline=time.monotonic() - 1)):
        with pytest.raises(DeadlineExceededError):
            model.last_hidden_states([[1, 2, 3], [1, 2, 3, 4]])
    assert model.last_hidden_states([[1, 2, 3]]).shape[0] == 1  # outside a call: no limit


class HangingServer(FakeRewardServer):
    """The fake vLLM server, hanging (until the test ends) on the paths in server.hang."""

    def do_POST(self) -> None:
        if self.path in getattr(self.server, "hang", ()):
            self.server.release.wait(30)
            return
        super().do_POST()

    def do_GET(self) -> None:
        if self.path in getattr(self.server, "hang", ()):
            self.server.release.wait(30)
            return
        super().do_GET()


def url(httpd) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def test_a_hung_tokenize_ends_the_call_at_its_deadline():
    with serving(HangingServer) as httpd:
        target = OpenAILM(url(httpd), role="target", timeout_s=5.0, tokenizer_fingerprint="x")
        httpd.hang = {"/tokenize"}
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError, match="/tokenize"):
            SpecsEngine(target=target).generate("q", "greedy", budget=Budget(latency_s=0.5))
        assert time.monotonic() - started < 2.0  # not the request's own 5 s timeout


def test_a_hung_remote_reward_gives_a_flagged_result_at_the_deadline():
    with serving(HangingServer) as httpd:
        reward = OpenAISequenceClassifierReward(url(httpd), timeout_s=5.0)
        httpd.hang = {"/classify"}
        clock = FakeClock()
        engine = SpecsEngine(target=lm("t", clock, propose_cost=0.0), reward=reward)
        started = time.monotonic()
        result = engine.generate("q", "beam_search", SpecsConfig(n=2, beam_width=2),
                                 Budget(latency_s=0.5))
        assert time.monotonic() - started < 2.0
        assert result.stats.reward_cut and result.stop_reason == "latency"


def test_a_hung_models_listing_at_construction_is_not_a_deadline(monkeypatch):
    monkeypatch.setattr("specs_engine.backends.openai.client.HEALTH_CHECK_S", 0.3)
    with serving(HangingServer) as httpd:
        httpd.hang = {"/v1/models"}
        with pytest.raises(ServerUnavailableError, match="/v1/models"):  # no call, no deadline
            OpenAILM(url(httpd), role="target", connect_timeout_s=0.2)


def test_a_call_that_loads_the_models_reports_the_load_apart(tiny_draft_dir, tiny_target_dir,
                                                             monkeypatch):
    from specs_engine import backends
    from specs_integrations.llama_index import SpecsLLM

    monkeypatch.setattr(backends, "_cache", {})  # nothing loaded yet, as in a fresh process
    llm = SpecsLLM(draft=str(tiny_draft_dir), target=str(tiny_target_dir), dtype="float32",
                   method="greedy", max_steps=1, max_new_tokens=2, latency_budget_s=30.0)
    first, second = llm.complete("q").raw, llm.complete("q").raw
    assert first["load_s"] > 0
    assert second["load_s"] == 0.0


def test_warm_up_loads_before_any_budget(tiny_draft_dir, tiny_target_dir):
    from specs_integrations.llama_index import SpecsLLM

    llm = SpecsLLM(draft=str(tiny_draft_dir), target=str(tiny_target_dir), dtype="float32",
                   method="greedy", max_steps=1, max_new_tokens=2).warm_up()
    assert llm.complete("q").raw["load_s"] == 0.0
