"""How a (question, steps) pair becomes model text, shared by training and scoring.

A reward head trained on one layout must be scored on the same one, so both sides
call this function. Steps are stripped and joined by a blank line, whether or not the
engine's step texts still carry their delimiter.
"""

from __future__ import annotations

from typing import Sequence

from specs_engine.errors import ConfigError

STEP_JOIN = "\n\n"


def format_solution(question: str, steps: Sequence[str]) -> str:
    """Question, blank line, then the steps separated by blank lines."""
    body = STEP_JOIN.join(step.strip() for step in steps)
    return f"{question.strip()}{STEP_JOIN}{body}"


def check_solutions(solutions: object) -> list[list[str]]:
    """Solutions as lists of step strings; refuses other shapes by name."""
    ok = isinstance(solutions, Sequence) and not isinstance(solutions, str) and all(
        isinstance(s, Sequence) and not isinstance(s, str) and len(s) > 0
        and all(isinstance(t, str) for t in s)
        for s in solutions
    )
    if not ok:
        raise ConfigError(
            f"solutions={solutions!r} is not allowed: give a list of solutions, each a non-empty list of step strings"
        )
    return [list(s) for s in solutions]
