"""The search methods by name: the one list that the engine, the integrations' settings,
the benchmark and the CLI read, so a new strategy is one line here.

A method is its strategy function and the roles it needs. "model" stands for the
language model a caller picks (draft or target) for a single-model method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from specs_engine.errors import ConfigError
from specs_engine.search.beam_search import run_beam_search
from specs_engine.search.best_of_n import run_best_of_n
from specs_engine.search.beams import Beam
from specs_engine.search.greedy import run_greedy
from specs_engine.search.rsd import run_rsd
from specs_engine.search.run import SearchRun
from specs_engine.search.specs import run_specs

MODEL_ROLES = ("draft", "target")
"""The roles a single-model method may run on."""


@dataclass(frozen=True)
class Method:
    """One search: how it runs and which models it needs."""

    name: str
    strategy: Callable[..., list[Beam]]
    """strategy(run), or strategy(run, model) when the method takes a `model` role."""
    needs: tuple[str, ...]
    """Roles: draft, target, reward, or model (the caller's pick of draft or target)."""
    answer_per_candidate: bool = False
    """Collect one finished answer per candidate (n) instead of one per beam."""
    samples: bool = True
    """Whether it samples candidates (then temperature must be > 0)."""

    @property
    def takes_model(self) -> bool:
        """Whether the caller picks which language model runs it."""
        return "model" in self.needs

    def roles(self, model: str) -> list[str]:
        """The roles this method uses, with `model` standing in for "model"."""
        return [model if need == "model" else need for need in self.needs]

    def run(self, run: SearchRun, model: str) -> list[Beam]:
        return self.strategy(run, model) if self.takes_model else self.strategy(run)


REGISTRY: dict[str, Method] = {m.name: m for m in (
    Method("specs", run_specs, ("draft", "target", "reward")),
    Method("beam_search", run_beam_search, ("model", "reward")),
    Method("best_of_n", run_best_of_n, ("model", "reward"), answer_per_candidate=True),
    Method("rsd", run_rsd, ("draft", "target", "reward")),
    Method("greedy", run_greedy, ("model",), samples=False),
)}
METHODS = tuple(REGISTRY)
"""The method names, in the order the docs list them."""


def get_method(name: str) -> Method:
    """The method called `name`; an unknown name is refused with the known ones."""
    if name not in REGISTRY:
        raise ConfigError(f"method={name!r} is unknown; known methods: {', '.join(METHODS)}")
    return REGISTRY[name]
