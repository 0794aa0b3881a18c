"""Reward-guided speculative decoding (Liao et al. 2025), the paper's main rival.

A draft step is kept when its reward reaches rsd_threshold; otherwise the target
regenerates the step. Unlike SPECS there is no target log-ratio and no mode switching.
"""

from __future__ import annotations

from specs_engine.search.beams import Beam
from specs_engine.search.rounds import keep_best, reward_round, run_rounds
from specs_engine.search.run import SearchRun


def run_rsd(run: SearchRun) -> list[Beam]:
    return run_rounds(run, "draft", lambda beams: rsd_step(run, beams))


def rsd_step(run: SearchRun, beams: list[Beam]) -> list[Beam]:
    """Draft candidates judged by reward alone; the target steps in when none passes."""
    run.stats.draft_rounds += 1
    proposals = run.propose("draft", beams, run.per_beam(beams), may_defer=True)
    if run.timed_out():
        return run.salvage(proposals)
    rewards = run.rewards(proposals) if proposals else []  # none: all failed the structure
    if rewards is None:  # the deadline cut the reward
        return run.salvage(proposals)
    good = [i for i, r in enumerate(rewards) if r >= run.config.rsd_threshold]
    if good:
        picked = [proposals[i] for i in good]
        return keep_best(run, picked, [rewards[i] for i in good], run.open_slots())
    run.stats.draft_rounds_rejected += 1
    run.stats.target_rounds += 1
    return reward_round(run, "target", beams)[0]
