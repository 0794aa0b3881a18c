"""scripts/train_reward.py: data labelling, shared-prefix features, the logistic head and
the files it ships, on a tiny random Qwen2 model (seconds)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
from pathlib import Path

import sys

import pytest
import torch
from safetensors.torch import load_file

from specs_engine.app.data.gsm8k import Problem
from specs_engine.rewards.formatting import format_solution

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_reward.py"
spec = importlib.util.spec_from_file_location("train_reward", SCRIPT)
train_reward = importlib.util.module_from_spec(spec)
sys.modules["train_reward"] = train_reward  # dataclasses look their module up by name
spec.loader.exec_module(train_reward)

PROBLEM = Problem("gsm8k-1", "Ann has 4 pens and buys 3. How many?", "7",
                  ("She starts with 4 pens.", "Then 4 + 3 = 7 pens."), 1, "train")


@pytest.fixture(scope="module")
def tiny(tiny_draft_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_draft_dir, dtype=torch.float32).eval()
    return model, tiny_tokenizer


def test_inject_error_changes_the_computed_result_only():
    rng = random.Random(0)
    wrong = train_reward.inject_error("Then 4 + 3 = 7 pens.", rng)
    assert wrong != "Then 4 + 3 = 7 pens." and wrong.startswith("Then 4 + 3 = ")
    assert wrong.endswith(" pens.")
    assert train_reward.inject_error("No numbers here.", rng) is None
    assert train_reward.inject_error("She has 12 pens", rng) != "She has 12 pens"


def test_reference_prefixes_are_good_and_their_corruptions_bad():
    examples = train_reward.reference_examples(PROBLEM, random.Random(0))
    good = [e for e in examples if e.label == 1]
    bad = [e for e in examples if e.label == 0]
    assert [len(e.steps) for e in good] == [1, 2, 3]
    assert good[-1].steps[-1] == "The answer is \\boxed{7}."
    assert len(bad) == 3 and all(e.source == "injected" for e in bad)
    for e in bad:
        assert e.steps[:-1] == good[len(e.steps) - 1].steps[:-1]
        assert e.steps[-1] != good[len(e.steps) - 1].steps[-1]


def test_generated_problems_join_training_only_and_get_corrupted_steps():
    plain = train_reward.training_problems(limit=3, generated=0, seed=0)
    mixed = train_reward.training_problems(limit=3, generated=5, seed=0)
    assert mixed["tune"] == plain["tune"]
    assert mixed["train"][:3] == plain["train"] and len(mixed["train"]) == 8
    examples = train_reward.build_examples(mixed["train"][3:], {}, seed=0)
    bad = [e for e in examples if e.source == "injected"]
    good = [e for e in examples if e.source == "reference"]
    assert good and len(bad) == len(good)  # every generated step has a number to corrupt
    assert all(e.steps[-1] not in {g.steps[-1] for g in good} for e in bad)


def test_draft_samples_are_labelled_by_their_final_answer():
    right = "Ann has 4 pens.\n\nShe buys 3, so 4 + 3 = 7.\n\nThe answer is \\boxed{7}."
    wrong = right.replace("7", "8")
    ok = train_reward.draft_examples(PROBLEM, right, random.Random(0))
    assert [e.label for e in ok if e.source == "draft"] == [1, 1, 1]
    assert any(e.source == "draft_injected" and e.label == 0 for e in ok)
    bad = train_reward.draft_examples(PROBLEM, wrong, random.Random(0))
    assert {e.label for e in bad} == {0} and all(e.source == "draft" for e in bad)


def test_shared_prefix_features_equal_separate_forward_passes(tiny):
    model, tokenizer = tiny
    examples = train_reward.reference_examples(PROBLEM, random.Random(1))
    shared = train_reward.features(model, tokenizer, examples)
    assert shared.shape == (len(examples), model.config.hidden_size)
    for i, example in enumerate(examples):
        ids = tokenizer(format_solution(example.question, example.steps), return_tensors="pt",
                        add_special_tokens=False)
        with torch.no_grad():
            alone = model(**ids, output_hidden_states=True).hidden_states[-1][0, -1]
        assert torch.allclose(shared[i], alone, atol=1e-4), i


def test_hosts_only_share_true_token_prefixes():
    ids = [[1, 2], [1, 2, 3], [1, 4], [5]]
    assert train_reward._hosts(ids) == [1, 1, 2, 3]


def test_logistic_head_separates_and_folds_standardisation():
    torch.manual_seed(0)
    x = torch.randn(200, 6) * torch.tensor([1.0, 10, 0.1, 1, 1, 1]) + 5
    y = (x[:, 1] - 5 + 0.2 * torch.randn(200) > 0).float()
    weight, bias = train_reward.fit_logistic(x, y, l2=1e-3, seed=0)
    assert weight.shape == (1, 6) and bias.shape == (1,)
    scores = (x @ weight.T + bias).squeeze(1)
    assert train_reward.auroc(scores, y.long()) > 0.95
    again = train_reward.fit_logistic(x, y, l2=1e-3, seed=0)
    assert torch.equal(again[0], weight)  # reproducible from the seed


def test_auroc_known_values():
    assert train_reward.auroc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert train_reward.auroc([0.1, 0.9], [1, 0]) == 0.0
    assert train_reward.auroc([0.5, 0.5], [1, 0]) == 0.5


def test_saved_head_follows_the_value_head_contract(tmp_path):
    weight, bias = torch.randn(1, 8), torch.randn(1)
    train_reward.save_head(tmp_path, weight, bias, {"type": "value_head", "base_model": "qwen2.5-coder-0.5b"})
    tensors = load_file(tmp_path / "value_head.safetensors")
    assert tensors["weight"].shape == (1, 8) and tensors["bias"].shape == (1,)
    assert torch.equal(tensors["weight"], weight)
    meta = json.loads((tmp_path / "specs_reward.json").read_text())
    assert meta["type"] == "value_head" and meta["base_model"] == "qwen2.5-coder-0.5b"
    assert meta["weights_sha256"] == hashlib.sha256((tmp_path / "value_head.safetensors").read_bytes()).hexdigest()


@pytest.mark.parametrize("name, base, width, held_out", [
    ("specs-prm", "qwen2.5-coder-0.5b", 896, 0.70),          # the draft's head: README 0.71
    ("specs-prm-target", "qwen2.5-coder-1.5b", 1536, 0.90),  # the target's head: README 0.90
])
def test_shipped_heads_match_their_base_and_claim(name, base, width, held_out):
    from specs_engine import sources

    assets = sources.resolve(name).path
    meta = json.loads((assets / "specs_reward.json").read_text())
    tensors = load_file(assets / "value_head.safetensors")
    assert meta["base_model"] == base
    assert tensors["weight"].shape == (1, width) and torch.isfinite(tensors["weight"]).all()
    # the README's claim (scripts/check_readme_figures.py ties the two), not merely "better
    # than chance"; tests/slow/test_reward_head.py recomputes the draft head's
    assert meta["held_out"]["all"] >= held_out and meta["held_out"]["n"] == 232
    # and the metadata describes these weights, not an earlier or later head
    assert hashlib.sha256((assets / "value_head.safetensors").read_bytes()).hexdigest() == meta["weights_sha256"]
