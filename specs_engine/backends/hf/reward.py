"""The in-process transformers reward: the adapter a directory's contents call for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from specs_engine.backends.reward_kind import SUPPORTED, model_architectures, reward_kind
from specs_engine.errors import ConfigError
from specs_engine.models import RewardModel


def load(location: str, *, dtype: Any, device: str, trust_remote_code: bool = False,
         allow_pickle: bool = False) -> RewardModel:
    """Dispatch on the directory's contents (or, for a hub id, its config): our value-head
    config, else the config's architectures."""
    from specs_engine.backends.hf.value_head import CONFIG_FILE

    if (Path(location) / CONFIG_FILE).is_file():
        from specs_engine.backends.hf.value_head import ValueHeadPRM

        return ValueHeadPRM.from_directory(location, dtype=dtype, device=device)
    architectures = model_architectures(location, trust_remote_code)
    options = dict(dtype=dtype, device=device, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    kind = reward_kind(architectures)
    if kind == "classifier":
        from specs_engine.backends.hf.sequence_classifier import SequenceClassifierReward

        return SequenceClassifierReward.from_pretrained(location, **options)
    if kind == "step_token":
        from specs_engine.backends.hf.step_token import StepTokenPRM

        return StepTokenPRM.from_pretrained(location, **options)
    raise ConfigError(
        f"reward={location!r} is not a reward model this package can load: its architectures are "
        f"{architectures}; supported: a value head directory ({CONFIG_FILE}), {SUPPORTED}"
    )
