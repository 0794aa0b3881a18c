"""One function turns flat settings into a SpecsConfig and a Budget: the CLI, the
integrations and the engine's dict arguments all go through it, so a bad value gets the
same message from each."""

from __future__ import annotations

import pytest

from specs_engine import Budget, ConfigError, SpecsConfig, SpecsEngine
from specs_engine.app.cli import main
from specs_engine.config import from_settings
from specs_integrations._settings import SpecsFields, plan_call
from tests.helpers.scripted import ScriptedReward, script_lm


def test_each_flat_setting_lands_where_it_is_declared():
    config, budget = from_settings({"n": 6, "beam_width": 3, "tau": 0.2, "latency_s": 2.5,
                                    "max_steps": 5})
    assert config == SpecsConfig(n=6, beam_width=3, tau=0.2)
    assert budget == Budget(latency_s=2.5, max_steps=5)
    assert from_settings({}) == (SpecsConfig(), Budget())


def test_an_unknown_setting_is_refused_with_both_field_lists():
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['nn'\]; SpecsConfig fields: n, "
                                          r"beam_width.*; Budget fields: latency_s, max_steps"):
        from_settings({"n": 2, "nn": 3})


BAD = "beam_width=3 is not allowed: beam_width must be an integer >= 1 that divides n=4"


def test_the_cli_the_integrations_and_the_engine_refuse_alike(capsys):
    assert main(["run", "q", "--n", "4", "--beam-width", "3"]) == 2
    assert BAD in capsys.readouterr().err
    defaults = {name: SpecsFields.model_fields[name].default for name in
                ("latency_budget_s", "max_steps", "max_new_tokens", "beta", "tau", "temperature",
                 "seed", "model_role", "strict_budget")}
    with pytest.raises(ConfigError, match=BAD):
        plan_call({**defaults, "method": "specs", "n": 4, "beam_width": 3})
    engine = SpecsEngine(script_lm("d", ["s"]), script_lm("t", ["s"]), ScriptedReward())
    with pytest.raises(ConfigError, match=BAD):
        engine.generate("q", config={"n": 4, "beam_width": 3})
    with pytest.raises(ConfigError, match=r"unknown Budget field\(s\) \['seconds'\]; known fields: "
                                          "latency_s, max_steps, max_new_tokens"):
        engine.generate("q", budget={"seconds": 1})
