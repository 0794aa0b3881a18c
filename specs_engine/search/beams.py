"""Beams as a tree of accepted steps.

A beam is its last node; its history is the chain of parents. Beams that share an
ancestor share that node object, so "which steps can no beam drop any more" is a
question of object identity, which is what lets streaming never take text back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

from specs_engine.models import Candidate
from specs_engine.result import Source, Step


@dataclass(eq=False)
class Beam:
    """One partial solution: the node of its last accepted step."""

    parent: Optional[Beam] = None
    step: Optional[Step] = None
    """None only for the root (the prompt)."""
    token_ids: tuple[int, ...] = ()
    """The step's tokens, in the tokenizer of the model that wrote it."""
    end: Optional[str] = None
    """Why the solution is complete (eos, stop, answer, max_new_tokens, context); None while live."""
    depth: int = 0
    total_tokens: int = 0
    _chain: Optional[list[Beam]] = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.end is not None

    def child(self, step: Step, token_ids: tuple[int, ...]) -> Beam:
        return Beam(
            parent=self,
            step=step,
            token_ids=token_ids,
            depth=self.depth + 1,
            total_tokens=self.total_tokens + len(token_ids),
        )

    def chain(self) -> list[Beam]:
        """Nodes from the first step to this one (the root excluded)."""
        if self._chain is None:
            self._chain = (self.parent.chain() if self.parent else []) + (
                [self] if self.step else []
            )
        return self._chain

    def steps(self) -> list[Step]:
        return [node.step for node in self.chain() if node.step is not None]

    def texts(self) -> list[str]:
        return [step.text for step in self.steps()]

    def text(self) -> str:
        return "".join(self.texts())

    def ids(self) -> list[int]:
        return [i for node in self.chain() for i in node.token_ids]

    @property
    def reward(self) -> Optional[float]:
        return self.step.reward if self.step else None


def common_chain(beams: Iterable[Beam]) -> list[Beam]:
    """The longest chain of nodes that every beam descends from."""
    chains = [beam.chain() for beam in beams]
    if not chains:
        return []
    common = []
    for nodes in zip(*chains):
        if any(node is not nodes[0] for node in nodes):
            break
        common.append(nodes[0])
    return common


def rank_key(beam: Beam) -> float:
    """Completed and live beams are ranked on one scale: the last step's reward."""
    reward = beam.reward
    return float("-inf") if reward is None else reward


@dataclass(frozen=True)
class Proposal:
    """A candidate step and the beam it extends."""

    parent: Beam
    candidate: Candidate
    source: Source
