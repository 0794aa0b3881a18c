"""Paired latency ratios and their bootstrap interval, on fixed rows."""

from __future__ import annotations

import pytest

from specs_engine.app.latency_stats import paired_ratio, paired_walls

ROWS = [
    {"arm": "specs", "problem": "p1", "wall_s": 10.0},
    {"arm": "beam_search:target", "problem": "p1", "wall_s": 20.0},
    {"arm": "specs", "problem": "p2", "wall_s": 30.0},
    {"arm": "beam_search:target", "problem": "p2", "wall_s": 20.0},
    {"arm": "specs", "problem": "p3", "wall_s": 5.0},
    {"arm": "beam_search:target", "problem": "p3", "wall_s": 10.0},
    {"arm": "specs", "problem": "only-specs", "wall_s": 99.0},
    {"arm": "greedy:target", "problem": "p1", "wall_s": 1.0},
]


def test_pairs_only_problems_both_arms_ran():
    assert paired_walls(ROWS, "specs", "beam_search:target") == [(10.0, 20.0), (30.0, 20.0), (5.0, 10.0)]


def test_ratio_is_sum_over_sum_with_median_and_wins():
    result = paired_ratio(paired_walls(ROWS, "specs", "beam_search:target"))
    assert result.ratio == pytest.approx(45 / 50)
    assert result.median_ratio == pytest.approx(0.5)
    assert result.faster_on == 2 and result.problems == 3


def test_bootstrap_interval_brackets_the_ratio_and_is_reproducible():
    pairs = [(float(a), float(b)) for a, b in zip(range(1, 41), range(2, 42))]
    one, two = paired_ratio(pairs, seed=1), paired_ratio(pairs, seed=1)
    assert one == two
    assert one.ci_low < one.ratio < one.ci_high
    # Resampling problems of one constant ratio can only give that ratio.
    constant = paired_ratio([(1.0, 2.0), (3.0, 6.0), (5.0, 10.0)])
    assert constant.ci_low == pytest.approx(0.5) and constant.ci_high == pytest.approx(0.5)


def test_no_shared_problem_gives_none():
    assert paired_ratio(paired_walls(ROWS, "rsd", "specs")) is None
