"""Tiny random-init models with a real tokenizer, built offline in well under a second.

They run the real transformers code path (tokenizer, chat template, KV cache, heads)
without any download. The draft and target share one tokenizer and differ in weights;
`build_other_tokenizer` gives a second, incompatible tokenizer. The language models are
biased toward the step delimiter and EOS so a search takes several steps and then ends.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2ForSequenceClassification,
    Qwen2ForTokenClassification,
)

EOS = "<|endoftext|>"
SPECIAL_TOKENS = [EOS, "<|im_start|>", "<|im_end|>", "<extra_0>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Qwen2's pre-tokenizer split: keeps "\n\n" (and ".\n\n") whole, one digit per token.
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
NAMES = ["Ann", "Bob", "Cara", "Dev", "Eli", "Fay"]
ITEMS = ["apples", "pens", "cookies", "books", "marbles", "stamps"]


def word_problems(count: int, seed: int = 0) -> list[str]:
    """Arithmetic word problems with step-by-step solutions: the tokenizer's corpus."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        lines.append(
            f"{name} has {a} {item} and buys {b} more. How many {item} does {name} have?"
            f"\n\n{name} starts with {a} {item}.\n\nThen {a} + {b} = {a + b}."
            f"\n\nThe answer is \\boxed{{{a + b}}}.\n\n#### {a + b}"
        )
    return lines


def build_tokenizer(vocab_size: int = 400, byte_level: bool = True) -> PreTrainedTokenizerFast:
    """A BPE tokenizer trained on the word problems, with Qwen-like special tokens."""
    tok = Tokenizer(models.BPE())
    if byte_level:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:  # a different, incompatible tokenizer: character-level BPE with Metaspace
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        alphabet = list("0123456789\n")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=alphabet, show_progress=False,
    )
    tok.train_from_iterator(word_problems(300), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _bias_toward(model: torch.nn.Module, token_ids: dict[int, float]) -> None:
    """Make the given tokens likely at every position, whatever the context.

    Dimension 0 of every input embedding is set to 1, so after the final norm the
    hidden state has a large, near-constant component there; the lm_head row of each
    chosen token gets a positive weight on it (a bias, in effect), every other row 0.
    """
    with torch.no_grad():
        model.get_input_embeddings().weight[:, 0] = 1.0
        head = model.get_output_embeddings().weight
        head[:, 0] = 0.0
        for token_id, weight in token_ids.items():
            head[token_id, 0] = weight


def _save(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)  # safetensors by default
    tokenizer.save_pretrained(path)
    return path


def _common(tokenizer: PreTrainedTokenizerFast, hidden: int) -> dict:
    return dict(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=2048, initializer_range=0.2, tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )


def _causal_lm(kind: str, tokenizer: PreTrainedTokenizerFast, seed: int, hidden: int):
    torch.manual_seed(seed)
    if kind == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**_common(tokenizer, hidden)))
    else:
        model = LlamaForCausalLM(LlamaConfig(**_common(tokenizer, hidden)))
    delimiter = tokenizer.encode("\n\n", add_special_tokens=False)
    dot_delimiter = tokenizer.encode(".\n\n", add_special_tokens=False)
    bias = {tokenizer.eos_token_id: 1.5}
    for ids in (delimiter, dot_delimiter):
        if len(ids) == 1:
            bias[ids[0]] = 1.2
    _bias_toward(model, bias)
    return model.eval()


def build_causal_lm(path: Path, seed: int = 0, kind: str = "qwen2", hidden: int = 48,
                    tokenizer: PreTrainedTokenizerFast | None = None) -> Path:
    """Save a tiny causal LM (qwen2 or llama) and its tokenizer under path."""
    tokenizer = tokenizer or build_tokenizer()
    return _save(_causal_lm(kind, tokenizer, seed, hidden), tokenizer, path)


def build_sequence_classifier(path: Path, num_labels: int = 1, seed: int = 2) -> Path:
    """A tiny Qwen2 sequence classifier: a reward model that scores whole solutions."""
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = Qwen2Config(num_labels=num_labels, **_common(tokenizer, 32))
    return _save(Qwen2ForSequenceClassification(config).eval(), tokenizer, path)


def build_step_token_prm(path: Path, seed: int = 3) -> Path:
    """A tiny Qwen2.5-Math-PRM look-alike: a 2-class head read at each <extra_0>."""
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = Qwen2Config(num_labels=2, **_common(tokenizer, 32))
    return _save(Qwen2ForTokenClassification(config).eval(), tokenizer, path)
