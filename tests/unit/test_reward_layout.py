"""The runtime-free reward pieces: the PRM layout and the reward kind of a config."""

from __future__ import annotations

import json

import pytest

from specs_engine.backends.reward_kind import model_architectures, reward_kind
from specs_engine.errors import ConfigError
from specs_engine.rewards.prm_layout import QWEN_PRM_SYSTEM, prm_layout, prm_text, step_token_id

STEPS = ["2 + 3 = 5.<s>", "  So \\boxed{5}. "]


def test_prm_layout_ends_every_step_with_one_separator():
    assert prm_layout("Q? ", STEPS, "<s>", QWEN_PRM_SYSTEM, chat=False) == "Q?\n\n2 + 3 = 5.<s>So \\boxed{5}.<s>"
    messages = prm_layout("Q? ", STEPS, "<s>", "sys", chat=True)
    assert messages == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Q? "},
        {"role": "assistant", "content": "2 + 3 = 5.<s>So \\boxed{5}.<s>"},
    ]


class _Tokenizer:
    chat_template = "any"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert tokenize is False and add_generation_prompt is False
        return "|".join(m["content"] for m in messages)

    def get_vocab(self):
        return {"<s>": 7}

    def convert_tokens_to_ids(self, token):
        return self.get_vocab()[token]


def test_prm_text_renders_with_the_template_and_plain_without():
    tokenizer = _Tokenizer()
    assert prm_text(tokenizer, "Q?", ["a"], "<s>", "sys") == "sys|Q?|a<s>"
    tokenizer.chat_template = None
    assert prm_text(tokenizer, "Q?", ["a"], "<s>", "sys") == "Q?\n\na<s>"


def test_step_token_id_refuses_a_separator_the_tokenizer_lacks():
    assert step_token_id(_Tokenizer(), "<s>") == 7
    with pytest.raises(ConfigError, match="step_token='<step>' is not a token"):
        step_token_id(_Tokenizer(), "<step>")


@pytest.mark.parametrize("architectures, kind", [
    (["Qwen2ForSequenceClassification"], "classifier"),
    (["Qwen2ForTokenClassification"], "step_token"),
    (["Qwen2ForProcessRewardModel"], "step_token"),
    (["Qwen2ForCausalLM"], None),
    ([], None),
])
def test_reward_kind_follows_the_declared_architecture(architectures, kind):
    assert reward_kind(architectures) == kind


def test_architectures_come_from_the_directory_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["XForTokenClassification"]}))
    assert model_architectures(str(tmp_path)) == ["XForTokenClassification"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="holds neither config.json nor a value head config"):
        model_architectures(str(empty))
