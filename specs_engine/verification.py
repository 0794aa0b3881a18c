"""Reward-guided soft verification: the rule that decides which draft steps survive.

score_j = beta * r_j + log_ratio_j, with log_ratio_j = log p_target(step_j) - log q_draft(step_j)
summed over the step's tokens (the importance weight of a whole step, so a long step
weighs as the product of its tokens' ratios). Survivors are those above accept_threshold;
children are then sampled from softmax(score / selection_temperature). With temperature 1
this is self-normalised importance sampling from the draft toward
pi*(y) ∝ p_target(y) exp(beta r(y)).
"""

from __future__ import annotations

import math
import random
from typing import Literal, Sequence


def log_ratio(
    target_logprobs: Sequence[float],
    draft_logprobs: Sequence[float],
    reduce: Literal["sum", "mean"] = "sum",
) -> float:
    """log p_target - log q_draft over one step.

    The two sides may count different tokens when the models tokenize differently (the
    step's text is then re-tokenised for the target): sums are still log-probabilities of
    the same text, and "mean" compares per-token averages of each side."""
    if reduce == "mean":
        return _mean(target_logprobs) - _mean(draft_logprobs)
    return sum(target_logprobs) - sum(draft_logprobs)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def soft_score(reward: float, ratio: float, beta: float) -> float:
    """The soft-verification score of one draft candidate."""
    return beta * reward + ratio


def survivors(scores: Sequence[float], accept_threshold: float) -> list[int]:
    """Indices of the candidates whose score exceeds the acceptance threshold."""
    return [i for i, s in enumerate(scores) if s > accept_threshold]


def sample_children(
    scores: Sequence[float], k: int, temperature: float, rng: random.Random
) -> list[int]:
    """k picks from softmax(scores / temperature): distinct while candidates last
    (Gumbel-top-k keeps beams' histories different), then with replacement so the beam
    count stays k (duplicates diverge at the next sampling step)."""
    keys = [s / temperature - math.log(-math.log(rng.random() or 1e-300)) for s in scores]
    order = sorted(range(len(scores)), key=keys.__getitem__, reverse=True)
    picks = order[:k]
    if len(picks) < k:
        top = max(scores)
        weights = [math.exp((s - top) / temperature) for s in scores]
        picks += rng.choices(range(len(scores)), weights=weights, k=k - len(picks))
    return picks
