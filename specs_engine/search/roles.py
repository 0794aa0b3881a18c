"""The models one search call runs on."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Optional

from specs_engine.models import LanguageModel, RewardModel
from specs_engine.result import Source


@dataclass(frozen=True)
class Roles:
    """The models of one engine, and the pool the target scores in while the reward scores."""

    draft: Optional[LanguageModel]
    target: Optional[LanguageModel]
    reward: Optional[RewardModel]
    executor: Executor

    def model(self, role: Source) -> LanguageModel:
        model = self.draft if role == "draft" else self.target
        assert model is not None, f"engine validated that a {role} model exists"
        return model
