"""Where a call's time and tokens went: the Stats a result reports.

Model time is charged per role as it is spent (a call cut by the deadline still spent
its time); `busy_s` is the model time the run waited on, against which overhead_s (the
search's own time) is measured, so target and reward scoring side by side count once.
"""

from __future__ import annotations

from typing import Sequence

from specs_engine.call_context import CallContext
from specs_engine.result import Source, Stats
from specs_engine.search.beams import Beam, Proposal


class Accounting:
    """The stats of one call, filled in as it runs and completed by `final`."""

    def __init__(self, prompt_tokens: int):
        self.stats = Stats(prompt_tokens=prompt_tokens)
        self.busy_s = 0.0
        self.considered = 0
        """Candidates proposed in all (SearchResult.candidates_considered)."""

    def proposed(self, role: Source, proposals: Sequence[Proposal], seconds: float) -> None:
        """A proposal call: its time and tokens go to the model that wrote them."""
        tokens = sum(len(p.candidate.token_ids) for p in proposals)
        if role == "draft":
            self.stats.draft_s += seconds
            self.stats.draft_tokens += tokens
        else:
            self.stats.target_s += seconds
            self.stats.target_tokens += tokens
        self.busy_s += seconds
        self.considered += len(proposals)

    def final(self, winner: Beam, wall_s: float, call: CallContext) -> Stats:
        """The stats with the winner's steps and the call's wall, queue and load time."""
        stats = self.stats
        steps = winner.steps()
        stats.steps_from_draft = sum(s.source == "draft" for s in steps)
        stats.steps_from_target = sum(s.source == "target" for s in steps)
        stats.completion_tokens = winner.total_tokens
        stats.wall_s = wall_s
        stats.queue_s, stats.load_s = min(call.queued_s, stats.wall_s), call.load_s
        stats.overhead_s = max(stats.wall_s - self.busy_s, 0.0)
        return stats
