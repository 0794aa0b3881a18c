"""The shipped reward head on the real 0.5B draft: its held-out AUROC recomputed (minutes on
a CPU; run with -m slow)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_reward.py"
spec = importlib.util.spec_from_file_location("train_reward", SCRIPT)
train_reward = importlib.util.module_from_spec(spec)
sys.modules["train_reward"] = train_reward  # dataclasses look their module up by name
spec.loader.exec_module(train_reward)


@pytest.mark.slow
def test_shipped_head_reaches_its_held_out_auroc():
    """The shipped head on the real 0.5B draft, recomputed on the 232 held-out tune-split
    prefixes: the AUROC its metadata (and the README) state. Minutes: run with -m slow."""
    from specs_engine import sources
    from specs_engine.app.data.gsm8k import load_problems

    assets = sources.resolve("specs-prm").path
    meta = json.loads((assets / "specs_reward.json").read_text())
    head = load_file(assets / "value_head.safetensors")
    model, tokenizer = train_reward.load_base(meta["base_model"])
    examples = train_reward.build_examples(load_problems("tune"), {}, meta["seed"])
    with torch.inference_mode():
        x = train_reward.features(model, tokenizer, examples)
    report = train_reward.evaluate(head["weight"], head["bias"], x, examples)
    assert report["n"] == meta["held_out"]["n"]
    assert report["all"] == pytest.approx(meta["held_out"]["all"], abs=0.005)
