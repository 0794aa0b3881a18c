"""Best-of-n: n independent samples from one model, the best by reward returned.

Samples are drawn step by step (the same distribution as whole-solution sampling) so the
budget can cut them. The reward model scores every round's new steps (through its prefix
cache that costs about one scoring of each whole sample), so when the deadline cuts the
search the samples already carry rewards to rank on, instead of being ranked unscored.
"""

from __future__ import annotations

from specs_engine.result import Source
from specs_engine.search.beams import Beam
from specs_engine.search.rounds import run_rounds
from specs_engine.search.run import SearchRun


def run_best_of_n(run: SearchRun, role: Source) -> list[Beam]:
    """run.slots is n here: every sample is its own beam and none is pruned."""

    def step(beams: list[Beam]) -> list[Beam]:
        per_beam = run.config.n if beams == [run.root] else 1
        proposals = run.propose(role, beams, per_beam)
        rewards = None if run.timed_out() else run.rewards(proposals)
        if rewards is None:  # cut by the deadline: the scored samples stand as they are
            return run.salvage(proposals) if beams == [run.root] else []
        return [run.accept(p, reward=r) for p, r in zip(proposals, rewards)]

    return run_rounds(run, role, step)
