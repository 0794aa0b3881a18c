"""scripts/train_target_probe.py: the search's layout of a beam, features that equal a
plain forward's states, the head directory it writes and a rerun that reuses the cached
features, on a tiny random Qwen2 model (seconds)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from specs_engine.app.data.gsm8k import Problem
from specs_engine.backends.hf.lm import TransformersLM

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_target_probe.py"
spec = importlib.util.spec_from_file_location("train_target_probe", SCRIPT)
probe = importlib.util.module_from_spec(spec)
sys.modules["train_target_probe"] = probe
spec.loader.exec_module(probe)

PROBLEM = Problem("gsm8k-1", "Ann has 4 pens and buys 3. How many?", "7",
                  ("She starts with 4 pens.", "Then 4 + 3 = 7 pens."), 1, "train")
STEPS = [*PROBLEM.steps, "The answer is \\boxed{7}."]


@pytest.fixture(scope="module")
def lm(tiny_draft_dir) -> TransformersLM:
    return TransformersLM.from_pretrained(tiny_draft_dir, dtype="float32")


def test_an_example_is_laid_out_as_the_search_holds_its_beam(lm):
    end = probe.end_token_id(lm, "<|im_end|>")
    prompt = lm.encode_prompt(PROBLEM.messages())  # the chat template, as the engine encodes it
    prefix, cont = probe.layout(lm, prompt, STEPS, end)
    assert prefix == prompt + lm.encode(STEPS[0] + "\n\n") + lm.encode(STEPS[1] + "\n\n")
    assert cont == lm.encode(STEPS[2]) + [end]  # the final answer ends the turn, not the step
    assert probe.layout(lm, prompt, STEPS[:2], end)[1] == lm.encode(STEPS[1] + "\n\n")
    assert probe.layout(lm, prompt, STEPS, end, offset=1) == (prefix, cont[:-1])  # the shipped probe reads offset 1


def test_one_call_per_problem_gives_each_examples_plain_forward_state(lm):
    examples = probe.build_examples([PROBLEM], {}, 0)
    assert {e.source for e in examples} == {"reference", "injected"}
    pairs = probe.problem_pairs(lm, PROBLEM, examples, probe.end_token_id(lm, "<|im_end|>"))
    states = probe.states_of(lm, pairs)
    assert states.shape == (len(examples), lm.model.config.hidden_size)
    for (prefix, cont), state in zip(pairs, states):
        with torch.inference_mode():
            out = lm.model(torch.tensor([prefix + cont]), output_hidden_states=True)
        assert np.abs(state - out.hidden_states[-1][0, -1].numpy()).max() < 1e-4


def test_main_writes_the_head_and_a_rerun_reuses_the_cached_features(tiny_draft_dir, tmp_path, monkeypatch):
    args = ["--base", str(tiny_draft_dir), "--backend", "transformers", "--limit", "2",
            "--work", str(tmp_path / "work"), "--out", str(tmp_path / "head")]
    assert probe.main(args) == 0
    meta = json.loads((tmp_path / "head" / "specs_reward.json").read_text())
    weights = (tmp_path / "head" / "value_head.safetensors").read_bytes()
    hidden = TransformersLM.from_pretrained(tiny_draft_dir, dtype="float32").model.config.hidden_size
    assert meta["type"] == "target_probe" and meta["hidden_size"] == hidden
    assert meta["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    assert meta["held_out"]["reference_vs_injected_n"] > 0 and set(meta["seconds"]) >= {"load", "fit", "total"}
    head = load_file(str(tmp_path / "head" / "value_head.safetensors"))
    assert head["weight"].shape == (1, hidden) and head["bias"].shape == (1,)

    def no_model_work(*_):
        raise AssertionError("a rerun must take every problem's features from the cache")

    monkeypatch.setattr(probe, "states_of", no_model_work)
    assert probe.main(args) == 0
    again = json.loads((tmp_path / "head" / "specs_reward.json").read_text())
    assert again["weights_sha256"] == meta["weights_sha256"]  # one seed reproduces
