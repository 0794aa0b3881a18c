"""The candidate rules every runtime shares, written once (no torch, no server).

A language model of any runtime must refuse the same bad arguments, seed its prefixes the
same way, say why a candidate ended with the same words and leave a caller's stop string
out of the step the same way; and two models may pass token ids to each other only when
their tokenizers hash alike. Each runtime keeps only how it *finds* these facts (a local
tokenizer, an engine output, a streamed answer). The runtimes that decode token by token
in process (hf, llama.cpp) also share the decoding loop itself (decode_rows), so the same
logits give the same candidates, ended at the same token, on either.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Mapping, Optional, Sequence

from specs_engine.errors import ConfigError
from specs_engine.models import Candidate, FinishReason, ProposalParams, check_state_offset

Decode = Callable[[Sequence[int]], str]


def check_count(num_candidates: Any) -> None:
    """Refuse anything but an integer >= 1 (a bool is not a count)."""
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, int) or num_candidates < 1:
        raise ConfigError(f"num_candidates={num_candidates!r} is not allowed: it must be an integer >= 1")


def check_params(params: Any) -> None:
    """Refuse sampling settings no runtime can honour, before any model work."""
    if not isinstance(params, ProposalParams):
        raise ConfigError(f"params={params!r} is not allowed: it must be a ProposalParams")
    if not isinstance(params.delimiter, str) or not params.delimiter:
        raise ConfigError(f"delimiter={params.delimiter!r} is not allowed: it must be a non-empty string")
    if isinstance(params.max_new_tokens, bool) or not isinstance(params.max_new_tokens, int) or params.max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens={params.max_new_tokens!r} is not allowed: it must be an integer >= 1")
    if not params.greedy and not params.temperature > 0:
        raise ConfigError(f"temperature={params.temperature!r} is not allowed: it must be > 0 (or greedy=True)")
    if not 0 < params.top_p <= 1:
        raise ConfigError(f"top_p={params.top_p!r} is not allowed: it must be in (0, 1]")
    if any(not isinstance(s, str) or not s for s in params.stop):
        raise ConfigError(f"stop={params.stop!r} is not allowed: stop strings must be non-empty strings")
    check_state_offset(params.state_offset, "state_offset")


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


# ---- the inputs of the in-process runtimes (hf, llama.cpp) -----------------------------


def check_messages(messages: Any, name: str, has_template: bool) -> list[dict[str, str]]:
    """Chat messages as plain dicts; refuses anything else by name, and refuses messages
    for a model without a chat template (a plain string prompt is then the way)."""
    if not has_template:
        raise ConfigError(f"model {name!r} has no chat template: give the prompt as a plain string")
    ok = isinstance(messages, Sequence) and all(
        isinstance(m, Mapping) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in messages
    )
    if not ok or not messages:
        raise ConfigError(
            f"prompt={messages!r} is not allowed: give a string or a non-empty list of "
            '{"role": str, "content": str} messages'
        )
    return [dict(m) for m in messages]


def check_ids(ids: Sequence[int], name: str, model: Any) -> tuple[int, ...]:
    """ids as a tuple of token ids of model (it has .name and .vocab_size)."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise ConfigError(f"{name}={ids!r} is not allowed: it must be a sequence of token ids")
    bad = [t for t in ids if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < model.vocab_size]
    if bad:
        raise ConfigError(
            f"{name} holds {bad[0]!r}, not a token id of {model.name!r} (ints in [0, {model.vocab_size}))"
        )
    return tuple(ids)


def check_prefix(prefix: Sequence[int], name: str, model: Any) -> tuple[int, ...]:
    """A non-empty prefix that leaves room in model's context window for one more token."""
    ids = check_ids(prefix, name, model)
    if not ids:
        raise ConfigError(f"{name} is empty: a prefix needs at least one token (the prompt)")
    if len(ids) >= model.context_window:
        raise ConfigError(
            f"{name} has {len(ids)} tokens, which fills the context window of "
            f"{model.name!r} ({model.context_window} tokens): shorten the prompt or budget"
        )
    return ids


def check_proposal(prefixes: Sequence[Sequence[int]], num_candidates: Any, params: Any,
                   model: Any) -> list[tuple[int, ...]]:
    """What an in-process runtime checks before proposing: the count, the sampling
    settings and every prefix (returned as tuples)."""
    check_count(num_candidates)
    check_params(params)
    return [check_prefix(p, f"prefixes[{i}]", model) for i, p in enumerate(prefixes)]


def group_pairs(prefixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
                model: Any) -> tuple[dict[tuple[int, ...], list[int]], list[tuple[int, ...]]]:
    """A scoring call's pairs, checked: (prefix -> indices of its pairs, continuations).
    Pairs sharing a prefix (all candidates of one beam) are scored together over it."""
    check_pairs(prefixes, continuations)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, prefix in enumerate(prefixes):
        groups.setdefault(check_prefix(prefix, f"prefixes[{i}]", model), []).append(i)
    conts = [check_ids(c, f"continuations[{i}]", model) for i, c in enumerate(continuations)]
    for prefix, members in groups.items():
        longest = max(len(conts[i]) for i in members)
        if len(prefix) + longest > model.context_window:
            raise ConfigError(
                f"prefix ({len(prefix)} tokens) + continuation ({longest} tokens) exceeds the "
                f"context window of {model.name!r} ({model.context_window} tokens)"
            )
    return groups, conts


# ---- the decoding loop of the in-process runtimes (hf, llama.cpp) ----------------------


@dataclass
class Row:
    """One candidate being decoded."""

    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish: Optional[FinishReason] = None
    keep: Optional[int] = None
    """Tokens kept when a stop string cut the candidate short."""


def batches_by_room(prefixes: Sequence[tuple[int, ...]], params: ProposalParams, window: int,
                    propose_batch: Callable[[list[tuple[int, ...]], int], list[list[Candidate]]]
                    ) -> list[list[Candidate]]:
    """Every prefix's candidates from one batch (propose_batch(prefixes, limit): rows that
    stop at `limit` new tokens), or one batch per token limit when some prefixes sit so
    near the context window's end that their rows must stop sooner."""
    limits = [min(params.max_new_tokens, window - len(p)) for p in prefixes]
    out: list[list[Candidate]] = [[] for _ in prefixes]
    for limit in sorted(set(limits), reverse=True):
        members = [i for i, room in enumerate(limits) if room == limit]
        for i, candidates in zip(members, propose_batch([prefixes[i] for i in members], limit)):
            out[i] = candidates
    return out


def decode_rows(n: int, logits: Any, params: ProposalParams, limit: int, eos_ids: Collection[int],
                decode: Decode, sample: Callable[[Any], tuple[Any, Any]],
                finished: Callable[[list[Row], list[int], Any], None],
                step: Callable[[list[Row], list[int], list[int]], Any]) -> list[Row]:
    """The decoding loop of every in-process runtime, for n rows starting from `logits`:
    sample a token per active row (sample(logits) -> tokens, log-probs), extend the rows,
    let the runtime see the rows (finished(rows, active, logits): it caches those that
    stopped), then run the newest token of the rows that go on (step(rows, active, still)
    -> their next logits)."""
    rows, active = [Row() for _ in range(n)], list(range(n))
    while True:
        tokens, logprobs = sample(logits)
        still = extend_rows(rows, active, tokens.tolist(), logprobs.tolist(), params, limit, eos_ids, decode)
        finished(rows, active, logits)
        if not still:
            return rows
        logits = step(rows, active, still)
        active = [active[i] for i in still]


def past(deadline: float | None) -> bool:
    """Whether a time.monotonic() deadline has passed (None: there is none)."""
    return deadline is not None and time.monotonic() >= deadline


def extend_rows(rows: list[Row], active: list[int], tokens: Sequence[int], logprobs: Sequence[float],
                params: ProposalParams, limit: int, eos_ids: Collection[int], decode: Decode) -> list[int]:
    """Append one sampled token to each active row and decide which rows stop (the round's
    deadline stops them all); returns the positions in `active` of the rows that go on."""
    for i, r in enumerate(active):
        rows[r].tokens.append(int(tokens[i]))
        rows[r].logprobs.append(float(logprobs[i]))
        rows[r].finish = finish_reason(rows[r], params, limit, eos_ids, decode)
    if past(params.deadline):
        for r in active:
            rows[r].finish = rows[r].finish or "deadline"
    return [i for i, r in enumerate(active) if rows[r].finish is None]


def finish_reason(row: Row, params: ProposalParams, limit: int, eos_ids: Collection[int],
                  decode: Decode) -> Optional[FinishReason]:
    """Why this row stops after its newest token, or None to go on. A stop string found
    before the delimiter cuts the row (row.keep is set to the tokens before it)."""
    if row.tokens[-1] in eos_ids:
        return "eos"
    text = decode(row.tokens)
    delimiter_at = text.find(params.delimiter)
    stops = [text.find(s) for s in params.stop if s in text]
    if stops and (delimiter_at < 0 or min(stops) <= delimiter_at):
        tokens = row.tokens
        row.keep = tokens_within(len(tokens), text[: min(stops)], lambda m: decode(tokens[:m]))
        return "stop"
    if delimiter_at >= 0:
        return "delimiter"
    return "length" if len(row.tokens) >= limit else None


def to_candidate(row: Row, decode: Decode) -> Candidate:
    """The finished row as the search sees it (cut before a stop string when one hit)."""
    keep = len(row.tokens) if row.keep is None else row.keep
    tokens = tuple(row.tokens[:keep])
    return Candidate(tokens, decode(tokens), tuple(row.logprobs[:keep]), row.finish or "length")


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
