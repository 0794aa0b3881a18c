"""Bad input named before any model work: knobs, a server's log-probs, chat messages and
call kwargs. Scripted engines and the fake vLLM server."""

from __future__ import annotations

import math

import pytest

from tests.helpers.fake_http import serving
from tests.helpers.fakes import fake_engine
from tests.unit.test_openai_backend import FakeVllm

from specs_engine.backends.openai.lm import OpenAILM
from specs_engine.config import SpecsConfig
from specs_engine.errors import ConfigError, ServerResponseError

QUESTION = "What is 2 + 3?"


@pytest.mark.parametrize("knob", ["beta", "tau", "temperature", "rsd_threshold"])
def test_an_infinite_knob_is_refused_by_name(knob):
    with pytest.raises(ConfigError, match=f"{knob}=inf is not allowed.*finite"):
        SpecsConfig(**{knob: math.inf})


class InfiniteLogprobs(FakeVllm):
    def _score(self, body):
        choices = [{"index": i, "prompt_logprobs": [None] + [{str(t): {"logprob": math.inf}} for t in ids[1:]]}
                   for i, ids in enumerate(body["prompt"])]
        self._json({"choices": choices})


def test_a_positive_infinite_log_prob_from_a_server_is_refused():
    with serving(InfiniteLogprobs) as httpd:
        lm = OpenAILM(f"http://127.0.0.1:{httpd.server_address[1]}", role="target",
                            tokenizer_fingerprint="x")
        with pytest.raises(ServerResponseError, match="log-prob inf"):
            lm.score([[1, 2]], [[3, 4]])


@pytest.mark.parametrize("messages, message", [
    ([{"role": "user", "content": "  "}], r"prompt\[0\]\['content'\] is blank"),
    ([{"role": "system", "content": "x"}, {"role": "robot", "content": "hi"}],
     r"prompt\[1\]\['role'\]='robot' is not allowed"),
])
def test_blank_chat_content_and_unknown_roles_are_refused(messages, message):
    engine = fake_engine()
    with pytest.raises(ConfigError, match=message):
        engine.generate(messages)
    assert engine.calls and engine.draft.propose_calls == 0  # refused before any model ran


def test_max_tokens_and_max_new_tokens_together_as_call_kwargs_are_refused():
    from specs_integrations.langchain import ChatSpecs

    chat = ChatSpecs(engine=fake_engine())
    with pytest.raises(ConfigError, match="max_tokens=5 and max_new_tokens=6 both given"):
        chat.invoke(QUESTION, max_tokens=5, max_new_tokens=6)
