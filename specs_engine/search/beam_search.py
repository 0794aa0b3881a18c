"""Beam search with one model and the reward model (the paper's BS(S) and BS(B))."""

from __future__ import annotations

from specs_engine.result import Source
from specs_engine.search.beams import Beam
from specs_engine.search.rounds import reward_round, run_rounds
from specs_engine.search.run import SearchRun


def run_beam_search(run: SearchRun, role: Source) -> list[Beam]:
    """Each step: n candidates over the live beams, the n // beam_width best kept."""
    return run_rounds(run, role, lambda beams: reward_round(run, role, beams)[0])
