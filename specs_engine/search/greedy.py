"""Greedy decoding with one model, step by step: the no-search baseline."""

from __future__ import annotations

from specs_engine.result import Source
from specs_engine.search.beams import Beam
from specs_engine.search.run import SearchRun


def run_greedy(run: SearchRun, role: Source) -> list[Beam]:
    """One beam, the most likely token each time, no reward model."""
    beams = run.beams
    while not run.should_stop():
        proposals = run.propose(role, beams, 1, greedy=True)
        beams = run.advance([run.accept(p, reward=None) for p in proposals[:1]])  # none: queued out
    return beams
