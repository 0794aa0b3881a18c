"""How a reward is read off a reward model's raw output, for the runtimes that receive
that output as plain numbers (a vLLM engine, a vLLM server). The in-process transformers
adapters apply the same rules on tensors, so the same weights score the same everywhere.
Anything that cannot be placed or is not a number raises ServerResponseError, naming
where it came from, instead of becoming a score."""

from __future__ import annotations

import math
from typing import Any, Sequence

from specs_engine.errors import ServerResponseError


def last_step_reward(rows: Any, ids: Sequence[int], step_token_id: int, where: str) -> float:
    """P(good) at the solution's last step token, from one row per token or one per step
    token; a count matching neither means the rows cannot be placed, so nothing is read."""
    steps = [i for i, t in enumerate(ids) if t == step_token_id]
    rows = list(rows) if isinstance(rows, (list, tuple)) else rows
    if not steps:
        raise ServerResponseError(f"{where}: the input holds no step token (id {step_token_id})")
    if not isinstance(rows, list) or len(rows) not in (len(ids), len(steps)):
        got = len(rows) if isinstance(rows, list) else type(rows).__name__
        raise ServerResponseError(
            f"{where} returned {got} rows for {len(ids)} tokens ({len(steps)} step tokens)"
        )
    row = rows[steps[-1]] if len(rows) == len(ids) else rows[-1]
    if not isinstance(row, (list, tuple)) or len(row) != 2:
        raise ServerResponseError(f"{where} returned row {row!r}; a PRM needs [P(bad), P(good)]")
    return _probability(row[1], where)


def classifier_reward(logits: Any, sigmoid: bool, where: str) -> float:
    """SequenceClassifierReward's rule on raw logits: one label -> the score (or its
    sigmoid), two -> softmax's P(label 1)."""
    if not isinstance(logits, (list, tuple)) or len(logits) not in (1, 2):
        raise ServerResponseError(f"{where} returned logits {logits!r}; a reward classifier has 1 or 2 labels")
    values = [_finite(v, where) for v in logits]
    if len(values) == 2:
        return _sigmoid(values[1] - values[0])
    return _sigmoid(values[0]) if sigmoid else values[0]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ServerResponseError(f"{where} returned {value!r}, not a finite number")
    return float(value)


def _probability(value: Any, where: str) -> float:
    p = _finite(value, where)
    if not 0.0 <= p <= 1.0:
        raise ServerResponseError(f"{where} returned probability {p}, outside [0, 1]")
    return p
