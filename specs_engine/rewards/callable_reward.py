"""CallableReward: any Python function as the reward model."""

from __future__ import annotations

import numbers
from typing import Any, Callable, Optional, Sequence

RewardFn = Callable[[str, list[str]], float]


class CallableReward:
    """Wraps fn(question, steps) -> float as a RewardModel.

        >>> reward = CallableReward(lambda question, steps: float("\\\\boxed" in steps[-1]))
        >>> reward.score("What is 2 + 3?", [["2 + 3 = 5.", "\\\\boxed{5}"]])
        [1.0]

    The adapter only calls: a NaN or an exception goes to the engine, which reports it
    with the step it happened at instead of guessing a score here.
    """

    def __init__(self, fn: RewardFn, name: Optional[str] = None):
        if not callable(fn):
            raise TypeError(f"fn={fn!r} is not callable: give a function (question, steps) -> float")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def __repr__(self) -> str:
        return f"CallableReward(name={self.name!r})"

    def score(self, question: str, solutions: Sequence[Sequence[str]]) -> list[Any]:
        return [_as_float(self.fn(question, list(steps))) for steps in solutions]


def _as_float(value: Any) -> Any:
    """Plain float for any real number (numpy, torch scalars); anything else is passed on
    unchanged so the engine's check names it."""
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return float(value.item())
    return value
