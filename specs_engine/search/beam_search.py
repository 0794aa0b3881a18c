"""Beam search with one model and the reward model (the paper's BS(S) and BS(B))."""

from __future__ import annotations

from specs_engine.result import Source
from specs_engine.search.beams import Beam
from specs_engine.search.rounds import finish_cheaply, reward_round
from specs_engine.search.run import SearchRun


def run_beam_search(run: SearchRun, role: Source) -> list[Beam]:
    """Each step: n candidates over the live beams, the n // beam_width best kept."""
    beams = run.beams
    while not run.should_stop():
        if not run.can_afford("round"):
            beams = finish_cheaply(run, beams, role)
            continue
        with run.round("round"):
            children, _ = reward_round(run, role, beams)
        beams = run.advance(children)
    return beams
