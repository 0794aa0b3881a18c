"""scripts/train_target_probe.py's outcome-labelled data (the policy's own solutions): every
step prefix laid out as a SPECS verify reads it, labelled by its solution's outcome, and
the held-out figures read back per solution in the same order (no model runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import train_target_probe as ttp  # noqa: E402

from specs_engine.app.data.gsm8k import Problem  # noqa: E402


class PromptOnly:
    """Only what outcome_pairs asks of a language model: the prompt's ids."""

    def encode_prompt(self, messages):
        return [100, 101]


PROBLEM = Problem("p1", "How many?", "3", (), 0, "train")
ROW = {"problem": "p1", "solutions": [
    {"ids": [[1, 2], [3]], "correct": True},
    {"ids": [[4, 5, 6]], "correct": False},
]}


def test_every_step_prefix_is_laid_out_over_the_prompt_and_the_earlier_steps_own_ids():
    assert ttp.outcome_pairs(PromptOnly(), PROBLEM, ROW["solutions"], offset=0) == [
        ([100, 101], [1, 2]), ([100, 101, 1, 2], [3]), ([100, 101], [4, 5, 6])]
    # offset 1: the state is read one token before the step's end (one token at least)
    assert ttp.outcome_pairs(PromptOnly(), PROBLEM, ROW["solutions"], offset=1) == [
        ([100, 101], [1]), ([100, 101, 1, 2], [3]), ([100, 101], [4, 5])]


def test_each_prefix_carries_its_solutions_outcome_and_problem_in_the_pairs_order():
    assert ttp.outcome_labels([ROW]) == ([1, 1, 0], ["p1", "p1", "p1"])


def test_held_out_figures_give_each_solution_its_own_prefixes_rewards():
    # a head reading feature 0: the right solution's prefixes score 2 and 3, the wrong one's -1
    states = [np.array([[2.0, 0], [3.0, 0], [-1.0, 0]], dtype=np.float32)]
    weight, bias = torch.tensor([[1.0, 0.0]]), torch.tensor([0.0])
    figures = ttp.held_out_figures(weight, bias, [ROW], states)
    assert figures["step_auroc"] == pytest.approx(1.0)
    assert figures["best_of_n_accuracy"] == 1.0
    flipped = ttp.held_out_figures(-weight, bias, [ROW], states)
    assert flipped["step_auroc"] == pytest.approx(0.0) and flipped["best_of_n_accuracy"] == 0.0


class Recording:
    """score_with_states that records each call's pairs and returns a state naming the pair."""

    def __init__(self):
        self.calls: list[list[tuple[list[int], list[int]]]] = []

    def score_with_states(self, prefixes, continuations):
        self.calls.append(list(zip(prefixes, continuations)))
        return None, [np.array([len(p), c[-1]], dtype=np.float32) for p, c in zip(prefixes, continuations)]


def test_states_by_round_asks_step_k_of_every_solution_together_and_keeps_the_pairs_order():
    lm = Recording()
    pairs = ttp.outcome_pairs(PromptOnly(), PROBLEM, ROW["solutions"], offset=0)
    states = ttp.states_by_round(lm, pairs, ROW["solutions"])
    assert [[c for _, c in call] for call in lm.calls] == [[[1, 2], [4, 5, 6]], [[3]]]
    assert states.tolist() == [[2, 2], [4, 3], [2, 6]]  # one row per pair, in outcome_pairs' order


class RecordingPrompt(PromptOnly, Recording):
    """Both halves: the prompt's ids and recorded scoring calls."""


def test_the_draft_and_target_samples_of_one_problem_keep_their_own_cached_features(tmp_path):
    lm = RecordingPrompt()
    other = {"problem": "p1", "solutions": [{"ids": [[7, 8, 9]], "correct": True}]}
    names = [ttp.outcome_cache_name(Path("samples/draft")), ttp.outcome_cache_name(Path("samples/target"))]
    assert names[0] != names[1]
    first = [ttp.outcome_features(lm, name, [row], {"p1": PROBLEM}, tmp_path, 0)[0]
             for name, row in zip(names, [ROW, other])]
    calls = len(lm.calls)
    again = [ttp.outcome_features(lm, name, [row], {"p1": PROBLEM}, tmp_path, 0)[0]
             for name, row in zip(names, [ROW, other])]
    assert len(lm.calls) == calls  # both read back from their own files, nothing recomputed
    assert [a.tolist() for a in again] == [f.tolist() for f in first]
