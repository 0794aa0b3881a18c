"""Reward-guided speculative decoding (Liao et al. 2025), the paper's main rival.

A draft step is kept when its reward reaches rsd_threshold; otherwise the target
regenerates the step. Unlike SPECS there is no target log-ratio and no mode switching.
"""

from __future__ import annotations

from specs_engine.search.beams import Beam
from specs_engine.search.rounds import finish_cheaply, keep_best, reward_round
from specs_engine.search.run import SearchRun


def run_rsd(run: SearchRun) -> list[Beam]:
    beams = run.beams
    while not run.should_stop():
        if not run.can_afford("round"):
            beams = finish_cheaply(run, beams, "draft")
            continue
        with run.round("round"):
            run.stats.draft_rounds += 1
            proposals = run.propose("draft", beams, run.per_beam(beams))
            if run.timed_out():
                beams = run.advance(run.salvage(proposals))
                break
            rewards = run.rewards(proposals)
            good = [i for i, r in enumerate(rewards) if r >= run.config.rsd_threshold]
            if good:
                picked = [proposals[i] for i in good]
                children = keep_best(run, picked, [rewards[i] for i in good], run.open_slots())
            else:
                run.stats.draft_rounds_rejected += 1
                run.stats.target_rounds += 1
                children, _ = reward_round(run, "target", beams)
        beams = run.advance(children)
    return beams
