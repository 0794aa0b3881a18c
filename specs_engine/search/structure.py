"""Structural verification inside the search (SpecsConfig.structure): which proposals of
a round may be accepted at all, before any scoring.

A candidate whose solution fails the check (a malformed or disallowed tool call, a JSON
reply that fails its schema) is dropped; one that completes it (a valid tool call) ends its
solution, since the caller must run the tool before the answer can go on. A round that can
defer (a draft round) may be left with nothing; one that cannot (the target's, the cheap
finish) keeps all its candidates when none passes, and the caller sees the failure when it
parses the answer.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

from specs_engine.search.beams import Proposal
from specs_engine.tool_calls import StructureCheck


def screen(check: Optional[StructureCheck], proposals: Sequence[Proposal],
           may_defer: bool) -> list[Proposal]:
    """The proposals a round keeps (see the module docstring)."""
    if check is None:
        return list(proposals)
    kept = []
    for p in proposals:
        verdict = check.verdict(p.parent.text() + p.candidate.text, p.candidate.finish_reason)
        if verdict == "complete":
            p = replace(p, candidate=replace(p.candidate, finish_reason="stop"))
        if verdict != "invalid":
            kept.append(p)
    return kept if kept or may_defer else list(proposals)
