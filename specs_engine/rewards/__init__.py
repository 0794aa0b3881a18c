"""Reward-model adapters: one RewardModel interface, four ways to fill it.

    CallableReward            any fn(question, steps) -> float
    StepTokenPRM              a PRM read at step-separator tokens (Qwen2.5-Math-PRM)
    ValueHeadPRM              our small head on a frozen LM's hidden states
    SequenceClassifierReward  a sequence classifier scoring the partial solution

`load_reward_model` picks one from what the caller gives, and for a directory from what
the directory holds (a head config, or the model config's architecture), never from the
name of a hub id. Loaded models are cached for the process, like language models.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from specs_engine.errors import ConfigError
from specs_engine.models import RewardModel
from specs_engine.rewards.callable_reward import CallableReward
from specs_engine.rewards.formatting import format_solution

__all__ = [
    "CallableReward", "SequenceClassifierReward", "StepTokenPRM", "ValueHeadPRM",
    "format_solution", "load_reward_model",
]

_cache: dict[tuple, RewardModel] = {}
_cache_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    """The torch-backed adapters import lazily, so CallableReward works without torch."""
    modules = {
        "SequenceClassifierReward": "sequence_classifier",
        "StepTokenPRM": "step_token",
        "ValueHeadPRM": "value_head",
    }
    if name not in modules:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{modules[name]}"), name)


def load_reward_model(spec: Any, dtype: Any = "bfloat16", device: str = "cpu",
                      trust_remote_code: bool = False, allow_pickle: bool = False) -> RewardModel:
    """A RewardModel from a RewardModel (returned as-is), a callable, or a model location."""
    if isinstance(spec, RewardModel):
        return spec
    if callable(spec):
        return CallableReward(spec)
    if not isinstance(spec, (str, os.PathLike)):
        raise ConfigError(
            f"reward={spec!r} is not allowed: give a RewardModel, a function (question, steps) -> float, "
            "or a reward model directory"
        )
    from specs_engine.backends import cache_key, resolve_location

    location = resolve_location(spec)
    options = dict(dtype=dtype, device=device, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    key = (location, cache_key(options))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _load_location(location, **options)
        return _cache[key]


def _load_location(location: str, *, dtype: Any, device: str, trust_remote_code: bool,
                   allow_pickle: bool) -> RewardModel:
    """Dispatch on the directory's contents (or, for a hub id, its config)."""
    from specs_engine.rewards.value_head import CONFIG_FILE

    if (Path(location) / CONFIG_FILE).is_file():
        from specs_engine.rewards.value_head import ValueHeadPRM

        return ValueHeadPRM.from_directory(location, dtype=dtype, device=device)
    architectures = _architectures(location, trust_remote_code)
    options = dict(dtype=dtype, device=device, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        from specs_engine.rewards.sequence_classifier import SequenceClassifierReward

        return SequenceClassifierReward.from_pretrained(location, **options)
    if any(a.endswith(("ForTokenClassification", "ForProcessRewardModel")) for a in architectures):
        from specs_engine.rewards.step_token import StepTokenPRM

        return StepTokenPRM.from_pretrained(location, **options)
    raise ConfigError(
        f"reward={location!r} is not a reward model this package can load: its architectures are "
        f"{architectures}; supported: a value head directory ({CONFIG_FILE}), *ForSequenceClassification, "
        "*ForTokenClassification or *ForProcessRewardModel"
    )


def _architectures(location: str, trust_remote_code: bool) -> list[str]:
    config_file = Path(location) / "config.json"
    if config_file.is_file():
        return list(json.loads(config_file.read_text()).get("architectures") or [])
    if Path(location).exists():
        raise ConfigError(f"reward={location!r} holds neither {config_file.name} nor a value head config")
    from specs_engine.backends.hf_common import import_transformers

    config = import_transformers().AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    return list(config.architectures or [])


def clear_reward_cache() -> None:
    """Forget every loaded reward model."""
    with _cache_lock:
        _cache.clear()
