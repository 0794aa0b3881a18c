"""SPECS: latency-aware test-time scaling with speculative drafts (arXiv 2506.15733)."""

from specs_engine.answers import answers_match, extract_answer, normalize_answer
from specs_engine.config import Budget, SpecsConfig
from specs_engine.engine import SpecsEngine
from specs_engine.errors import ConfigError, MissingExtraError, ModelCallError, RewardError, SpecsError
from specs_engine.methods import METHODS
from specs_engine.models import Candidate, LanguageModel, ProposalParams, RewardModel
from specs_engine.result import Event, FinalEvent, SearchResult, Stats, Step, StepEvent

__all__ = [
    "Budget", "Candidate", "ConfigError", "Event", "FinalEvent", "LanguageModel", "METHODS",
    "MissingExtraError", "ModelCallError", "ProposalParams", "RewardError", "RewardModel",
    "SearchResult", "SpecsConfig", "SpecsEngine", "SpecsError", "Stats", "Step", "StepEvent",
    "answers_match", "extract_answer", "normalize_answer",
]
