"""The real Qwen2.5-Coder preset on backend="llama.cpp"; run with -m slow."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: pip install 'specs-tts[llama-cpp]'")

from specs_engine.backends import load_language_model  # noqa: E402
from specs_engine.models import ProposalParams  # noqa: E402


@pytest.mark.slow
def test_real_preset_on_llama_cpp_shares_ids_with_transformers_and_answers():
    """The q4_k_m GGUFs on llama.cpp: the same prompt ids as the bf16 copies on transformers
    (so either runtime's tokens mean the same), one tokenizer for draft and target, and a
    greedy answer."""
    roles = {role: load_language_model(name, backend="llama.cpp")
             for role, name in (("draft", "qwen2.5-coder-0.5b"), ("target", "qwen2.5-coder-1.5b"))}
    hf = load_language_model("qwen2.5-coder-0.5b", backend="transformers")
    messages = [{"role": "user", "content": "What is 6 * 7?"}]
    assert roles["draft"].encode_prompt(messages) == hf.encode_prompt(messages)
    assert roles["draft"].tokenizer_fingerprint == roles["target"].tokenizer_fingerprint
    prompt = roles["target"].encode_prompt(messages)
    [[answer]] = roles["target"].propose([prompt], 1, ProposalParams("\n\n\n", 24, greedy=True))
    assert "42" in answer.text
