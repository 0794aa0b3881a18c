"""The clock of one search call: its start, its deadline and what each kind of round costs.

A strategy asks `can_afford(kind)` before a round; the answer is the round's measured
cost (the slowest recent one) against the time left, so the search stops or finishes
cheaply before a round would overrun the deadline instead of after.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

Clock = Callable[[], float]


class RunClock:
    """When the call started, when its budget ends, and the cost of each kind of round."""

    def __init__(self, now: Clock, start: Optional[float], latency_s: Optional[float]):
        self.now = now
        self.start = now() if start is None else start
        """When the call entered the engine: its budget covers encoding and queueing too."""
        self.deadline = self.start + latency_s if latency_s else None
        self._cost: dict[str, float] = {}

    def monotonic_deadline(self) -> Optional[float]:
        """The same deadline on time.monotonic(), which the backends compare against (the
        engine's clock may be another one, e.g. a test's); None: no time limit."""
        return None if self.deadline is None else time.monotonic() + self.time_left()

    def elapsed(self) -> float:
        return self.now() - self.start

    def time_left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - self.now()

    def can_afford(self, kind: str) -> bool:
        """Whether a round of this kind, at its measured cost so far, ends before the deadline."""
        return self._cost.get(kind, 0.0) < self.time_left()

    @contextmanager
    def round(self, kind: str) -> Iterator[None]:
        """Times a round so can_afford can predict the next one (the slowest recent one)."""
        started = self.now()
        yield
        cost = self.now() - started
        self._cost[kind] = max(cost, 0.8 * self._cost.get(kind, cost))

    def record(self, kind: str, seconds: float) -> None:
        """The latest cost of a part of a round (verify, reward)."""
        self._cost[kind] = seconds

    def proposal_deadline(self, scored_by: str) -> Optional[float]:
        """When decoding must end: the deadline less the latest cost of the scoring that
        follows it (scored_by: "verify" for draft candidates the target and the reward
        verify, "reward" for steps the reward alone scores). Reserving a verify for a step
        only the reward scores left SPECS' cheap finishing steps no time to decode."""
        if self.deadline is None:
            return None
        return self.deadline - self._cost.get(scored_by, 0.0)
