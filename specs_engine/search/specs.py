"""SPECS: the draft proposes, the target and the reward model verify, hard steps defer.

Generation starts in target mode (config.start). A target round switches to draft mode when its best
reward exceeds tau; a draft round whose candidates all fail soft verification is
deferred: the target regenerates that step (the draft's spent time stays in the stats).
"""

from __future__ import annotations

from typing import Sequence

from specs_engine.search.beams import Beam
from specs_engine.search.rounds import finish_cheaply, reward_round
from specs_engine.search.run import SearchRun
from specs_engine.verification import sample_children, soft_score, survivors


def run_specs(run: SearchRun) -> list[Beam]:
    """The search loop; returns the live beams when it stops (run.finish ranks them)."""
    beams, mode = run.beams, run.config.start
    while not run.should_stop():
        if not run.can_afford(f"{mode} round"):
            beams = finish_cheaply(run, beams, "draft")
            continue
        if mode == "draft":
            with run.round("draft round"):
                children = draft_round(run, beams)
            if children or run.stop_reason:
                beams = run.advance(children)
            else:  # deferred: the target regenerates this step, if the budget still allows
                run.stats.draft_rounds_rejected += 1
                mode = "target"
            continue
        with run.round("target round"):
            children, best_reward = reward_round(run, "target", beams, run.config.target_candidates)
        run.stats.target_rounds += 1
        mode = "draft" if best_reward > run.config.tau else "target"
        beams = run.advance(children)
    return beams


def draft_round(run: SearchRun, beams: Sequence[Beam]) -> list[Beam]:
    """Draft candidates, soft-verified; survivors are sampled into the kept beams.
    Empty when no candidate survives (the caller defers to the target, unless the
    deadline passed: then the run has a stop reason and the round was salvaged)."""
    config = run.config
    run.stats.draft_rounds += 1
    proposals = run.propose("draft", beams, run.per_beam(beams), may_defer=True, scored_by="verify")
    if run.timed_out() or not proposals:  # none left: all failed the structural check
        return run.salvage(proposals)
    verified = run.verify(proposals)
    if verified is None:
        return run.salvage(proposals)
    ratios, rewards = verified
    scores = [soft_score(r, x, config.beta) for r, x in zip(rewards, ratios)]
    alive = survivors(scores, config.accept_threshold)
    if not alive:
        return []
    picks = sample_children(
        [scores[i] for i in alive], run.open_slots(), config.selection_temperature, run.rng
    )
    return [
        run.accept(proposals[i], rewards[i], ratios[i], scores[i])
        for i in (alive[p] for p in picks)
    ]
