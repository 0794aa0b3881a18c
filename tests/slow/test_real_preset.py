"""The real Qwen2.5-Coder preset: real models, minutes on a CPU; run with -m slow."""

from __future__ import annotations

import pytest
import torch

from specs_engine import sources


@pytest.mark.slow
def test_real_preset_loads_with_shared_tokenizer_and_chat_template():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    roles = sources.resolve_preset("qwen2.5-coder")
    draft, target = sources.resolve(roles["draft"]), sources.resolve(roles["target"])
    assert sources.is_complete(draft.path, sources.REGISTRY[roles["draft"]])
    tokenizers = [AutoTokenizer.from_pretrained(r.path) for r in (draft, target)]
    messages = [{"role": "user", "content": "What is 6 * 7?"}]
    prompts = [t.apply_chat_template(messages, tokenize=True, add_generation_prompt=True) for t in tokenizers]
    assert prompts[0] == prompts[1]  # the draft's token ids feed the target as they are
    assert tokenizers[0].get_vocab() == tokenizers[1].get_vocab()
    model = AutoModelForCausalLM.from_pretrained(draft.path, dtype=torch.bfloat16)
    ids = tokenizers[0].apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)
    out = model.generate(**ids, max_new_tokens=24, do_sample=False)
    assert "42" in tokenizers[0].decode(out[0, ids["input_ids"].shape[1]:])
