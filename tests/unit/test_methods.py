"""One method registry: the engine dispatches through it, and the CLI, the benchmark and
the integrations' settings accept exactly its names."""

from __future__ import annotations

from typing import get_args

import pytest

from specs_engine import ConfigError, SpecsEngine, methods
from specs_engine.app.bench import Arm
from specs_engine.app.cli import parser
from specs_engine.methods import METHODS, MODEL_ROLES, REGISTRY, Method
from specs_engine.search.greedy import run_greedy
from specs_integrations._settings import SpecsFields
from tests.helpers.scripted import ScriptedReward, script_lm


def engine() -> SpecsEngine:
    return SpecsEngine(script_lm("draft", ["d \\boxed{1}"]), script_lm("target", ["t \\boxed{1}"]),
                       ScriptedReward(0.9))


@pytest.mark.parametrize("name", METHODS)
def test_every_registered_method_runs_through_the_engine(name):
    result = engine().generate("q", name, model="draft")
    assert result.method == name and result.text
    if REGISTRY[name].takes_model:
        assert {step.source for step in result.steps} == {"draft"}


def test_a_new_registry_entry_is_all_the_engine_needs(monkeypatch):
    ran = []

    def echo(run, model):
        ran.append(model)
        return run_greedy(run, model)

    monkeypatch.setitem(REGISTRY, "echo", Method("echo", echo, ("model",)))
    assert engine().generate("q", "echo", model="draft").text.startswith("d")
    assert ran == ["draft"]
    with pytest.raises(ConfigError, match="method='mcts' is unknown; known methods: specs"):
        methods.get_method("mcts")


def test_cli_bench_and_integrations_accept_exactly_the_registry():
    run = next(a for a in parser()._subparsers._group_actions[0].choices["run"]._actions
               if a.dest == "method")
    assert tuple(run.choices) == METHODS
    assert get_args(SpecsFields.model_fields["method"].annotation) == METHODS
    assert get_args(SpecsFields.model_fields["model_role"].annotation) == MODEL_ROLES
    assert [Arm.parse(f"{name}:draft").label for name in METHODS] == [
        f"{name}:draft" if REGISTRY[name].takes_model else name for name in METHODS]
    for bad in ("mcts", "greedy:big"):
        with pytest.raises(ConfigError, match=f"--methods entry '{bad}'"):
            Arm.parse(bad)
