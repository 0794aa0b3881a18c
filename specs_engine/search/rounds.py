"""Rounds shared by several strategies: a reward-ranked round and the cheap finish."""

from __future__ import annotations

from typing import Callable, Sequence

from specs_engine.result import Source
from specs_engine.search.beams import Beam, rank_key
from specs_engine.search.run import Proposal, SearchRun


def keep_best(
    run: SearchRun, proposals: Sequence[Proposal], rewards: Sequence[float], keep: int
) -> list[Beam]:
    """The `keep` highest-reward proposals as new beams (beam search's selection)."""
    order = sorted(range(len(proposals)), key=lambda i: rewards[i], reverse=True)
    return [run.accept(proposals[i], rewards[i]) for i in order[:keep]]


def reward_round(run: SearchRun, role: Source, beams: Sequence[Beam],
                 per_beam: int | None = None) -> tuple[list[Beam], float]:
    """One step of reward-guided beam search by `role`: propose `per_beam` candidates per
    beam (default: n over the beams), score, keep the best.

    Returns the new beams and the best reward seen (SPECS switches modes on it)."""
    proposals = run.propose(role, beams, per_beam or run.per_beam(beams))
    if run.timed_out():
        return run.salvage(proposals), float("-inf")
    rewards = run.rewards(proposals)
    if rewards is None:  # the deadline cut the reward: keep the likeliest, unscored
        return run.salvage(proposals), float("-inf")
    return keep_best(run, proposals, rewards, run.open_slots()), max(rewards)


def finish_cheaply(run: SearchRun, beams: Sequence[Beam], role: Source) -> list[Beam]:
    """Near the deadline: drop all but the best beam and extend it one greedy step at a
    time with the cheaper model, reward-scored so it still ranks on the common scale.
    When even that would overrun, the search stops with what it has."""
    if not run.can_afford("cheap"):
        run.out_of_time()
        return list(beams)
    run.score_unrewarded(beams)  # best-of-n samples carry no reward yet: rank them first
    best = max(beams, key=rank_key)
    with run.round("cheap"):
        proposals = run.propose(role, [best], 1, greedy=True)
        rewards = None if run.timed_out() else run.rewards(proposals)
        if rewards is None:
            children = run.salvage(proposals)
        else:
            children = [run.accept(proposals[0], rewards[0])]
    return run.advance(children)


def run_rounds(run: SearchRun, role: Source, step: Callable[[list[Beam]], list[Beam]]) -> list[Beam]:
    """The loop of the single-policy strategies: one `step` per round while the budget
    allows one, cheap finishing steps by `role` once a round no longer fits."""
    beams = run.beams
    while not run.should_stop():
        if not run.can_afford("round"):
            beams = finish_cheaply(run, beams, role)
            continue
        with run.round("round"):
            children = step(beams)
        beams = run.advance(children)
    return beams
