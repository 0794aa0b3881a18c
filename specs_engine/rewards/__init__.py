"""Reward models: one RewardModel interface; here, what is the same on every runtime.

    CallableReward            any fn(question, steps) -> float
    format_solution           the text a sequence classifier or value head reads
    prm_layout                the input layout of a step-token PRM (Qwen2.5-Math-PRM)
    score_rules               how a reward is read off a model's raw output

The adapters that run weights live with their runtime (specs_engine.backends):

    StepTokenPRM              backends/hf: a PRM read at step-separator tokens
    ValueHeadPRM              backends/hf: our small head on a frozen LM's hidden states
    SequenceClassifierReward  backends/hf: a sequence classifier scoring the partial solution
    Vllm*, Remote*            backends/vllm, backends/openai: the same on vLLM or a server

`load_reward_model` (backends' one loader, one cache) picks one from what the caller
gives, and for a directory from what the directory holds, never from a hub id's name.
It and the hf adapters are importable from here too, as before.
"""

from __future__ import annotations

from typing import Any

from specs_engine.backends import (
    REWARD_BACKENDS, SERVING_OPTIONS, clear_reward_cache, load_reward_model, reward_options,
)
from specs_engine.rewards.callable_reward import CallableReward
from specs_engine.rewards.formatting import format_solution

__all__ = [
    "CallableReward", "SequenceClassifierReward", "StepTokenPRM", "ValueHeadPRM",
    "clear_reward_cache", "format_solution", "load_reward_model", "reward_options",
    "REWARD_BACKENDS", "SERVING_OPTIONS",
]


def __getattr__(name: str) -> Any:
    """The torch-backed adapters import lazily, so CallableReward works without torch."""
    modules = {
        "SequenceClassifierReward": "specs_engine.backends.hf.sequence_classifier",
        "StepTokenPRM": "specs_engine.backends.hf.step_token",
        "ValueHeadPRM": "specs_engine.backends.hf.value_head",
    }
    if name not in modules:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(modules[name]), name)
