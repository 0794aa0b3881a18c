"""What a reward model's answer must be before the search ranks on it."""

from __future__ import annotations

import math
from typing import Any, Sequence


def checked_rewards(values: Sequence[Any], expected: int, vote_weights: bool) -> list[float]:
    """One finite number per solution (>= 0 when they are vote weights), as floats.
    A ValueError says what is wrong; the search adds the role, model and step."""
    values = list(values)
    if len(values) != expected:
        raise ValueError(f"returned {len(values)} rewards for {expected} solutions")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"returned {value!r}; rewards must be finite numbers")
        if value < 0 and vote_weights:
            raise ValueError(f"returned {value!r}; final_selection='weighted_vote' sums rewards as "
                             "vote weights, which must be >= 0 (e.g. a classifier with sigmoid=True)")
    return [float(v) for v in values]
