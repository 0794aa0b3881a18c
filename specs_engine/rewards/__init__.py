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


REWARD_BACKENDS = {
    "vllm": "specs_engine.rewards.vllm_reward",
    "openai": "specs_engine.rewards.remote",
}
"""Backend name -> module providing load(location, *, dtype, device, **kwargs);
"transformers" (the default) is _load_location below."""


def load_reward_model(spec: Any, dtype: Any = "bfloat16", device: str = "cpu",
                      trust_remote_code: bool = False, allow_pickle: bool = False,
                      backend: str = "transformers", **backend_kwargs: Any) -> RewardModel:
    """A RewardModel from a RewardModel (returned as-is), a callable, or a model location:
    a directory or hub id for backend "transformers" or "vllm", a server base URL for
    "openai" (backend_kwargs: kind="step_token"|"classifier", api_key, timeout_s, ...)."""
    if isinstance(spec, RewardModel):
        return spec
    if callable(spec):
        return CallableReward(spec)
    if not isinstance(spec, (str, os.PathLike)):
        raise ConfigError(
            f"reward={spec!r} is not allowed: give a RewardModel, a function (question, steps) -> float, "
            "or a reward model directory"
        )
    if backend != "transformers" and backend not in REWARD_BACKENDS:
        raise ConfigError(
            f"backend={backend!r} is not allowed for the reward: use transformers, {', '.join(REWARD_BACKENDS)}"
        )
    from specs_engine.backends import cache_key, named_load_errors, resolve_location

    location = os.fspath(spec)
    location = location if "://" in location else resolve_location(location)  # URLs are not resolved
    options = dict(dtype=dtype, device=device, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    key = (location, backend, cache_key({**options, **backend_kwargs}))
    with _cache_lock:
        if key not in _cache:
            with named_load_errors("reward", location):
                _cache[key] = _load_with(backend, location, options, backend_kwargs)
        return _cache[key]


SERVING_OPTIONS = {
    "openai": ("api_key", "timeout_s", "connect_timeout_s", "retries"),
    "vllm": ("gpu_memory_utilization", "max_model_len", "enforce_eager"),
}
"""Options that configure a backend's servers or engines, for the reward as for the
language models: SpecsEngine.from_pretrained passes them on to the reward."""


def reward_options(backend: str) -> tuple[str, ...]:
    """The from_pretrained keyword arguments that also go to the reward model."""
    return ("trust_remote_code", "allow_pickle", *SERVING_OPTIONS.get(backend, ()))


def _load_with(backend: str, location: str, options: dict, backend_kwargs: dict) -> RewardModel:
    """A value-head directory is our own format, which no server runs: it always loads
    in-process (so a preset's reward works with backend="vllm" or "openai" too), and the
    backend's serving options have nothing to configure there."""
    if backend == "transformers" or _is_value_head_dir(location):
        refused = sorted(set(backend_kwargs) - set(SERVING_OPTIONS.get(backend, ())))
        if refused:
            raise ConfigError(
                f"{refused} are not allowed for the in-process transformers reward "
                f"{location!r}; they are options of the vllm and openai reward backends"
            )
        return _load_location(location, **options)
    import importlib

    return importlib.import_module(REWARD_BACKENDS[backend]).load(location, **options, **backend_kwargs)


def _is_value_head_dir(location: str) -> bool:
    if "://" in location:  # a server URL: no need to import torch to know
        return False
    from specs_engine.rewards.value_head import CONFIG_FILE

    return (Path(location) / CONFIG_FILE).is_file()


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
        try:
            return list(json.loads(config_file.read_text()).get("architectures") or [])
        except (ValueError, AttributeError) as exc:
            raise ConfigError(f"{config_file} is not a model config: {exc}") from None
    if Path(location).exists():
        raise ConfigError(f"reward={location!r} holds neither {config_file.name} nor a value head config")
    from specs_engine.backends.hf_common import import_transformers

    config = import_transformers().AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    return list(config.architectures or [])


def clear_reward_cache() -> None:
    """Forget every loaded reward model."""
    with _cache_lock:
        _cache.clear()
