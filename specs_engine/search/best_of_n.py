"""Best-of-n: n independent samples from one model, the best by reward returned.

Samples are drawn step by step (the same distribution as whole-solution sampling) so the
budget can cut them; the reward model scores each finished sample once, at the end.
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
        return [run.accept(p, reward=None) for p in run.propose(role, beams, per_beam)]

    return run_rounds(run, role, step)
