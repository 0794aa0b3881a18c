"""Bad input is refused before any model runs, with a message naming the problem."""

from __future__ import annotations

import math

import pytest

from tests.helpers.scripted import ScriptedLM, ScriptedReward
from specs_engine import Budget, ConfigError, SpecsConfig, SpecsEngine


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n=0), r"n=0 is not allowed: n must be an integer >= 1"),
        (dict(n=4, beam_width=3), r"beam_width=3 .* divides n=4"),
        (dict(beam_width=0), r"beam_width=0"),
        (dict(beta=-1.0), r"beta=-1.0 .* >= 0"),
        (dict(temperature=0.0), r"temperature=0.0 .* > 0"),
        (dict(selection_temperature=-1), r"selection_temperature=-1"),
        (dict(top_p=1.5), r"top_p=1.5"),
        (dict(log_ratio="max"), r"log_ratio='max' .* one of sum, mean"),
        (dict(n="4"), r"n='4' .* an integer"),
        (dict(beta=math.nan), r"beta=nan .* a number"),
        (dict(delimiter=""), r"delimiter=''"),
    ],
)
def test_bad_config_values_are_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SpecsConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(latency_s=0), r"latency_s=0 .* > 0"),
        (dict(latency_s=-2.0), r"latency_s=-2.0"),
        (dict(max_steps=0), r"max_steps=0"),
        (dict(max_new_tokens=-1), r"max_new_tokens=-1"),
    ],
)
def test_bad_budgets_are_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Budget(**kwargs)


def test_unknown_override_names_the_field():
    with pytest.raises(ConfigError, match=r"unknown SpecsConfig field\(s\) \['nn'\]"):
        SpecsConfig().with_overrides(nn=3)


class ExplodingLM(ScriptedLM):
    """Fails the test if the engine lets a model run on bad input."""

    def propose(self, *args, **kwargs):
        raise AssertionError("a model ran before validation")


@pytest.fixture
def engine():
    menu = lambda i: ["s\n\n"]  # noqa: E731
    return SpecsEngine(
        ExplodingLM("draft", menu, context_window=64), ExplodingLM("target", menu), ScriptedReward({})
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (dict(prompt=""), "prompt is empty"),
        (dict(prompt="   "), "prompt is empty"),
        (dict(prompt=42), "prompt=42 is not allowed"),
        (dict(prompt=[{"role": "user"}]), "is not allowed"),
        (dict(prompt="q", method="mcts"), "method='mcts' is unknown; known methods: specs, beam_search"),
        (dict(prompt="q", model="big"), "model='big' is not allowed"),
        (dict(prompt="x" * 100), r"prompt is 101 tokens but the draft model 'draft' accepts at most 64"),
        (dict(prompt="q", config={"n": 0}), "n=0"),
        (dict(prompt="q", budget={"latency_s": 0}), "latency_s=0"),
        (dict(prompt="q", budget={"seconds": 1}), "fields: latency_s"),
        (dict(prompt="q", stop="\n"), "stop='\\\\n' is not allowed"),
    ],
)
def test_bad_calls_fail_before_any_model_runs(engine, call, message):
    with pytest.raises(ConfigError, match=message):
        engine.generate(**call)


def test_method_needing_a_missing_role_says_which():
    lm = ScriptedLM("solo", lambda i: ["s"])
    with pytest.raises(ConfigError, match="method='specs' needs a draft and a reward model"):
        SpecsEngine(target=lm).generate("q")
    assert SpecsEngine(target=lm).generate("q", "greedy").text == "s"


def test_engine_refuses_non_models():
    with pytest.raises(ConfigError, match="draft=.* is not a LanguageModel"):
        SpecsEngine(draft="not a model")
    with pytest.raises(ConfigError, match="needs a draft or a target"):
        SpecsEngine()


def test_stream_raises_validation_errors_too(engine):
    with pytest.raises(ConfigError, match="prompt is empty"):
        list(engine.stream(""))
