"""Paired latency statistics for comparing search methods on the same problems.

Why paired: on a shared CPU the same problem takes very different times for every method
(a long solution is long for all of them), so a ratio of per-method means over different
problem sets mixes problem difficulty into the comparison. Pairing each method's time with
the reference's time on the same problem, and resampling problems (not rows) for the
interval, keeps the comparison about the methods.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence


@dataclass(frozen=True)
class PairedRatio:
    """Latency of one arm relative to a reference arm over the problems both ran."""

    problems: int
    ratio: float
    """sum(arm seconds) / sum(reference seconds) over the shared problems."""
    ci_low: float
    ci_high: float
    """95% percentile-bootstrap interval of `ratio`, resampling problems."""
    median_ratio: float
    """Median of the per-problem ratios (robust to one long problem)."""
    faster_on: int
    """Problems on which the arm took less time than the reference."""


def paired_walls(rows: Iterable[Mapping], arm: str, reference: str) -> list[tuple[float, float]]:
    """(arm seconds, reference seconds) for every problem both arms have a row for."""
    by_arm: dict[str, dict[str, float]] = {arm: {}, reference: {}}
    for row in rows:
        if row["arm"] in by_arm:
            by_arm[row["arm"]][row["problem"]] = float(row["wall_s"])
    shared = sorted(set(by_arm[arm]) & set(by_arm[reference]))
    return [(by_arm[arm][p], by_arm[reference][p]) for p in shared]


def paired_ratio(pairs: Sequence[tuple[float, float]], *, resamples: int = 2000,
                 seed: int = 0) -> PairedRatio | None:
    """The paired ratio with its bootstrap interval; None when no problem is shared."""
    if not pairs:
        return None
    rng = random.Random(seed)
    boot = []
    for _ in range(resamples):
        sample = [pairs[rng.randrange(len(pairs))] for _ in pairs]
        boot.append(_ratio(sample))
    boot.sort()
    return PairedRatio(
        problems=len(pairs),
        ratio=_ratio(pairs),
        ci_low=boot[int(0.025 * (resamples - 1))],
        ci_high=boot[int(0.975 * (resamples - 1))],
        median_ratio=statistics.median(a / b for a, b in pairs),
        faster_on=sum(a < b for a, b in pairs),
    )


def _ratio(pairs: Sequence[tuple[float, float]]) -> float:
    return sum(a for a, _ in pairs) / sum(b for _, b in pairs)
