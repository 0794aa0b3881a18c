"""Which kind of reward model a location holds, from what its config declares (never from
its name): one rule for every runtime that loads reward weights itself (hf, vllm)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

from specs_engine.errors import ConfigError, MissingExtraError

RewardKind = Literal["classifier", "step_token"]

SUPPORTED = "*ForSequenceClassification, *ForTokenClassification or *ForProcessRewardModel"
"""The architectures reward_kind recognizes, for error messages."""


def model_architectures(location: str, trust_remote_code: bool = False) -> list[str]:
    """The architectures in a directory's config.json; for a hub id, transformers' config."""
    config_file = Path(location) / "config.json"
    if config_file.is_file():
        try:
            return list(json.loads(config_file.read_text()).get("architectures") or [])
        except (ValueError, AttributeError) as exc:
            raise ConfigError(f"{config_file} is not a model config: {exc}") from None
    if Path(location).exists():
        raise ConfigError(f"reward={location!r} holds neither {config_file.name} nor a value head config")
    try:  # a hub id: only its config tells (both runtimes that load weights ship transformers)
        import transformers
    except ImportError as exc:
        raise MissingExtraError("transformers", "transformers") from exc
    config = transformers.AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    return list(config.architectures or [])


def reward_kind(architectures: list[str]) -> Optional[RewardKind]:
    """"classifier" for a sequence classifier, "step_token" for a token-classification or
    process reward model, None for anything else."""
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "classifier"
    if any(a.endswith(("ForTokenClassification", "ForProcessRewardModel")) for a in architectures):
        return "step_token"
    return None
