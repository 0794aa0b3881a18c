"""The candidate rules every runtime shares, written once (no torch, no server).

A language model of any runtime must refuse the same bad arguments, seed its prefixes the
same way, say why a candidate ended with the same words and leave a caller's stop string
out of the step the same way; and two models may pass token ids to each other only when
their tokenizers hash alike. Each runtime keeps only how it *finds* these facts (a local
tokenizer, an engine output, a streamed answer).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Sequence

from specs_engine.errors import ConfigError
from specs_engine.models import FinishReason, ProposalParams


def check_count(num_candidates: Any) -> None:
    """Refuse anything but an integer >= 1 (a bool is not a count)."""
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, int) or num_candidates < 1:
        raise ConfigError(f"num_candidates={num_candidates!r} is not allowed: it must be an integer >= 1")


def check_pairs(prefixes: Sequence[Any], continuations: Sequence[Any]) -> None:
    """score() takes one prefix per continuation: unequal counts cannot pair up."""
    if len(prefixes) != len(continuations):
        raise ConfigError(
            f"score got {len(prefixes)} prefixes and {len(continuations)} continuations: "
            "give one prefix per continuation"
        )


def pair_up(prefixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]
            ) -> tuple[list[tuple[list[int], list[int]]], list[int]]:
    """The checked (prefix, continuation) pairs as lists, and the indices of those with a
    non-empty continuation: the only ones a runtime must score (the others score [])."""
    check_pairs(prefixes, continuations)
    pairs = [(list(p), list(c)) for p, c in zip(prefixes, continuations)]
    return pairs, [i for i, (_, c) in enumerate(pairs) if c]


def prefix_seed(seed: int | None, index: int) -> int | None:
    """The seed of the index-th prefix of one proposal call. vLLM seeds a request's j-th
    sample with seed + j, and one seed for all prefixes would give every beam the same
    noise: so prefixes are spaced far apart, and the result fits a 31-bit seed."""
    return None if seed is None else (seed * 1_000_003 + index * 65_537) % 2**31


def stop_strings(params: ProposalParams) -> list[str]:
    """What a server or engine stops at: the step delimiter, then the caller's stop strings."""
    return [params.delimiter, *params.stop]


def reported_finish_reason(finished: str | None, stop_reason: Any, delimiter: str) -> FinishReason:
    """Why a vLLM-style output ended: finished is vLLM's finish_reason ("stop", "length",
    or None while still running), stop_reason the matched stop string (None or a token id
    for an end-of-sequence token)."""
    if finished is None:
        return "deadline"
    if finished == "length":
        return "length"
    if isinstance(stop_reason, str):
        return "delimiter" if stop_reason == delimiter else "stop"
    return "eos"


def text_before_stop(text: str, stop: str) -> str:
    """The text before a caller's stop string: the stop string is not part of the step.
    (Engines stop at its first match, so its last occurrence is the one that stopped.)"""
    cut = text.rfind(stop)
    return text if cut < 0 else text[:cut]


def tokens_within(count: int, kept_text: str, text_of: Callable[[int], str]) -> int:
    """The most leading tokens (of count) whose text lies within kept_text; text_of(m) is
    the text of the first m tokens (a decode, or the streamed text up to an offset)."""
    for m in range(count, -1, -1):
        if kept_text.startswith(text_of(m)):
            return m
    return 0


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of the vocabulary and special tokens: equal means token ids mean the same text.
    Every runtime with a local Hugging Face tokenizer uses this one, so a vLLM draft and a
    transformers target that share a tokenizer pass token ids unchanged."""
    payload = {
        "vocab": sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]),
        "special": sorted(str(t) for t in tokenizer.all_special_tokens),
        "eos": tokenizer.eos_token_id,
    }
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()[:16]
