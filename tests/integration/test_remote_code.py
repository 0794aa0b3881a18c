"""Remote code runs only with trust_remote_code=True.

A tiny model directory whose config names its own Python classes (`auto_map`, as hub
models with custom architectures do): without the flag loading is refused and the
module never runs; with it the custom class is the one loaded, through the engine too.
"""

from __future__ import annotations

import json
import shutil

import pytest

from specs_engine import Budget, SpecsConfig, SpecsEngine
from specs_engine.backends.hf.lm import TransformersLM

MODULE = '''
import os
from pathlib import Path
from transformers import Qwen2Config, Qwen2ForCausalLM

Path(os.environ["SPECS_TEST_REMOTE_MARKER"]).touch()  # proof that this file was executed


class SpecsCustomConfig(Qwen2Config):
    model_type = "specs_custom"


class SpecsCustomLM(Qwen2ForCausalLM):
    config_class = SpecsCustomConfig
'''


@pytest.fixture(scope="module")
def custom_dir(tmp_path_factory, tiny_draft_dir):
    path = tmp_path_factory.mktemp("remote_code") / "custom"
    shutil.copytree(tiny_draft_dir, path)
    (path / "custom_lm.py").write_text(MODULE)
    config = json.loads((path / "config.json").read_text())
    config.update(model_type="specs_custom", architectures=["SpecsCustomLM"],
                  auto_map={"AutoConfig": "custom_lm.SpecsCustomConfig",
                            "AutoModelForCausalLM": "custom_lm.SpecsCustomLM"})
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture
def marker(tmp_path, monkeypatch):
    """Where the custom module, if it runs, leaves its mark (a fresh path per test)."""
    path = tmp_path / "ran.marker"
    monkeypatch.setenv("SPECS_TEST_REMOTE_MARKER", str(path))
    return path


def test_remote_code_is_refused_without_the_flag(custom_dir, marker):
    with pytest.raises(ValueError, match="trust_remote_code"):
        TransformersLM.from_pretrained(custom_dir, dtype="float32")
    assert not marker.exists()  # the custom module never ran


def test_remote_code_runs_with_the_flag(custom_dir, marker, tiny_target_dir, tiny_reward_dir):
    lm = TransformersLM.from_pretrained(custom_dir, dtype="float32", trust_remote_code=True)
    assert type(lm.model).__name__ == "SpecsCustomLM" and marker.exists()
    engine = SpecsEngine.from_pretrained(draft=str(custom_dir), target=str(tiny_target_dir),
                                         reward=str(tiny_reward_dir), dtype="float32",
                                         trust_remote_code=True)
    assert type(engine.draft.model).__name__ == "SpecsCustomLM"
    result = engine.generate("1 + 1?", config=SpecsConfig(seed=0, tau=0.0), budget=Budget(max_steps=2))
    assert result.steps
