"""The four reward adapters and load_reward_model, on tiny random models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from specs_engine.backends import load_language_model
from specs_engine.backends.hf.lm import TransformersLM
from specs_engine.errors import ConfigError
from specs_engine.models import RewardModel
from specs_engine.rewards import (
    CallableReward, SequenceClassifierReward, StepTokenPRM, ValueHeadPRM, format_solution,
    load_reward_model,
)

QUESTION = "Ann has 3 apples and buys 4 more. How many apples?"
SOLUTIONS = [
    ["Ann starts with 3 apples."],
    ["Ann starts with 3 apples.", "Then 3 + 4 = 7.", "The answer is \\boxed{7}."],
    ["Ann starts with 3 apples.", "Then 3 + 4 = 8."],
]


def close(a, b, tol=1e-4) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


def assert_batch_equals_singles(reward: RewardModel) -> list[float]:
    batched = reward.score(QUESTION, SOLUTIONS)
    singles = [reward.score(QUESTION, [s])[0] for s in SOLUTIONS]
    assert close(batched, singles)
    assert all(isinstance(r, float) and math.isfinite(r) for r in batched)
    assert len(set(round(r, 6) for r in batched)) > 1, "different solutions, different rewards"
    return batched


# ---- CallableReward ----------------------------------------------------------------------

def test_callable_reward_calls_with_question_and_steps():
    calls = []

    def fn(question, steps):
        calls.append((question, steps))
        return np.float32(len(steps) / 10)

    reward = CallableReward(fn)
    assert isinstance(reward, RewardModel) and reward.name == "fn"
    assert close(reward.score(QUESTION, SOLUTIONS), [0.1, 0.3, 0.2])
    assert all(type(r) is float for r in reward.score(QUESTION, SOLUTIONS))
    assert calls[0] == (QUESTION, SOLUTIONS[0])


def test_callable_reward_leaves_nan_and_errors_to_the_engine():
    assert math.isnan(CallableReward(lambda q, s: float("nan")).score(QUESTION, SOLUTIONS[:1])[0])
    assert CallableReward(lambda q, s: "high").score(QUESTION, SOLUTIONS[:1]) == ["high"]

    def broken(question, steps):
        raise KeyError("no reward for you")

    with pytest.raises(KeyError, match="no reward"):
        CallableReward(broken).score(QUESTION, SOLUTIONS)
    with pytest.raises(TypeError, match="not callable"):
        CallableReward(0.5)


# ---- ValueHeadPRM ------------------------------------------------------------------------

def test_value_head_loads_from_its_directory_and_shares_the_base(tiny_reward_dir, tiny_draft_dir):
    meta = json.loads((tiny_reward_dir / "specs_reward.json").read_text())
    assert meta["type"] == "value_head" and meta["base_model"] == str(tiny_draft_dir)
    prm = load_reward_model(tiny_reward_dir, dtype="float32")
    assert isinstance(prm, ValueHeadPRM)
    assert prm is load_reward_model(str(tiny_reward_dir), dtype="float32")
    assert prm.lm is load_language_model(tiny_draft_dir, dtype="float32")  # no second copy
    rewards = assert_batch_equals_singles(prm)
    assert all(0 < r < 1 for r in rewards)


def test_value_head_reads_the_last_token_of_the_formatted_solution(tiny_reward_dir):
    prm = load_reward_model(tiny_reward_dir, dtype="float32")
    with_delimiters = [[s + "\n\n" for s in SOLUTIONS[1]]]
    assert close(prm.score(QUESTION, with_delimiters), prm.score(QUESTION, SOLUTIONS[1:2]), 1e-6)
    text = format_solution(QUESTION, SOLUTIONS[1])
    ids = prm.lm.tokenizer(text, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        hidden = prm.lm.model(**ids, output_hidden_states=True).hidden_states[-1][0, -1]
        expected = torch.sigmoid(prm.head(hidden.float())).item()
    assert math.isclose(prm.score(QUESTION, SOLUTIONS[1:2])[0], expected, abs_tol=1e-5)


def test_value_head_save_and_reload_round_trip(tiny_draft_dir, tmp_path):
    torch.manual_seed(11)
    prm = ValueHeadPRM.untrained(str(tiny_draft_dir), inner_size=8, dtype="float32")
    saved = prm.save_head(tmp_path / "head")
    again = ValueHeadPRM(str(tiny_draft_dir), saved, dtype="float32")
    assert close(prm.score(QUESTION, SOLUTIONS), again.score(QUESTION, SOLUTIONS), 1e-6)
    assert prm.features(QUESTION, SOLUTIONS).shape == (3, prm.lm.model.config.hidden_size)


def test_value_head_refuses_a_mismatched_base(tiny_reward_dir, tiny_target_dir):
    with pytest.raises(ConfigError, match="hidden_size=48.*hidden_size=64"):
        ValueHeadPRM(str(tiny_target_dir), tiny_reward_dir, dtype="float32")
    with pytest.raises(ConfigError, match="exactly one of head_path"):
        ValueHeadPRM(str(tiny_target_dir), dtype="float32")


# ---- SequenceClassifierReward and StepTokenPRM -------------------------------------------

def test_sequence_classifier_one_label(tiny_seq_classifier_dir):
    reward = load_reward_model(tiny_seq_classifier_dir, dtype="float32")
    assert isinstance(reward, SequenceClassifierReward)
    raw = assert_batch_equals_singles(reward)
    squashed = SequenceClassifierReward(reward.model, reward.tokenizer, sigmoid=True)
    assert close(squashed.score(QUESTION, SOLUTIONS), [1 / (1 + math.exp(-r)) for r in raw])


def test_sequence_classifier_two_labels(tmp_path):
    from tests.helpers.tiny_models import build_sequence_classifier

    reward = load_reward_model(build_sequence_classifier(tmp_path / "two", num_labels=2), dtype="float32")
    assert all(0 < r < 1 for r in assert_batch_equals_singles(reward))


def test_step_token_prm_reads_the_last_separator(tiny_step_prm_dir):
    prm = load_reward_model(tiny_step_prm_dir, dtype="float32")
    assert isinstance(prm, StepTokenPRM)
    rewards = assert_batch_equals_singles(prm)
    text = prm.text(QUESTION, SOLUTIONS[1])
    assert text.count("<extra_0>") == 3 and text.rstrip().endswith("<extra_0><|im_end|>")
    ids = prm.tokenizer(text, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        probs = prm.model(**ids).logits[0].softmax(-1)[:, 1]
    last = (ids["input_ids"][0] == prm.step_token_id).nonzero()[-1].item()
    assert math.isclose(rewards[1], probs[last].item(), abs_tol=1e-5)


def test_step_token_prm_needs_its_separator(tiny_step_prm_dir):
    prm = load_reward_model(tiny_step_prm_dir, dtype="float32")
    with pytest.raises(ConfigError, match="step_token='<step>'"):
        StepTokenPRM(prm.model, prm.tokenizer, step_token="<step>")


# ---- load_reward_model ---------------------------------------------------------------------

def test_load_reward_model_dispatch_and_errors(tiny_draft_dir, tmp_path):
    reward = CallableReward(lambda q, s: 1.0)
    assert load_reward_model(reward) is reward
    assert isinstance(load_reward_model(lambda q, s: 0.0), CallableReward)
    with pytest.raises(ConfigError, match="reward=42"):
        load_reward_model(42)
    with pytest.raises(ConfigError, match="ForCausalLM.*supported"):
        load_reward_model(tiny_draft_dir, dtype="float32")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="neither config.json"):
        load_reward_model(tmp_path / "empty")


def test_solutions_must_be_lists_of_steps(tiny_seq_classifier_dir):
    reward = load_reward_model(tiny_seq_classifier_dir, dtype="float32")
    assert reward.score(QUESTION, []) == []
    for bad in ("one string", [["ok"], "not a list"], [[]]):
        with pytest.raises(ConfigError, match="solutions="):
            reward.score(QUESTION, bad)


def test_reward_and_its_base_lm_are_safe_across_threads(tiny_reward_dir):
    from concurrent.futures import ThreadPoolExecutor

    from specs_engine.models import ProposalParams

    prm = load_reward_model(tiny_reward_dir, dtype="float32")
    expected = prm.score(QUESTION, SOLUTIONS)
    prompt = prm.lm.encode_prompt(QUESTION)
    params = ProposalParams(delimiter="\n\n", max_new_tokens=8, seed=0)

    def work(i: int):
        if i % 2:
            return prm.score(QUESTION, SOLUTIONS)
        return prm.lm.propose([prm.lm.encode_prompt(QUESTION)], 2, params)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(16)))
    for i, result in enumerate(results):
        if i % 2:
            assert close(result, expected, 1e-5)
        else:
            assert [c.token_ids for c in result[0]] == [c.token_ids for c in results[0][0]]
    assert prompt == prm.lm.encode_prompt(QUESTION)


def test_value_head_reads_only_the_new_step_through_the_prefix_cache(tiny_draft_dir, tmp_path):
    base = TransformersLM.from_pretrained(tiny_draft_dir, dtype="float32")
    prm = ValueHeadPRM.untrained(base)
    steps = ["Ann starts with 3 apples.", "Then 3 + 4 = 7."]
    prm.score(QUESTION, [steps[:1]])
    before = base.prefill_tokens
    prm.score(QUESTION, [steps])
    new_tokens = len(base.encode(format_solution(QUESTION, steps))) - len(
        base.encode(format_solution(QUESTION, steps[:1])))
    assert base.prefill_tokens - before <= new_tokens + 2  # BPE may re-merge at the seam
