"""The candidate rules every in-process runtime shares: when a decoding row stops, where a
stop string cuts it, and what the search gets back.

The transformers and llama.cpp runtimes decode rows token by token; both must end a
candidate at the same token for the same text, or the same weights would give different
steps on the two runtimes. So the rules live here once, over a `decode(ids) -> str`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Optional, Sequence

from specs_engine.errors import ConfigError
from specs_engine.models import Candidate, FinishReason, ProposalParams

Decode = Callable[[Sequence[int]], str]


@dataclass
class Row:
    """One candidate being decoded."""

    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish: Optional[FinishReason] = None
    keep: Optional[int] = None
    """Tokens kept when a stop string cut the candidate short."""


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


def extend_rows(rows: list[Row], active: list[int], tokens: Sequence[int], logprobs: Sequence[float],
                params: ProposalParams, limit: int, eos_ids: Collection[int], decode: Decode) -> list[int]:
    """Append one sampled token to each active row and decide which rows stop (the round's
    deadline stops them all); returns the positions in `active` of the rows that go on."""
    for i, r in enumerate(active):
        rows[r].tokens.append(int(tokens[i]))
        rows[r].logprobs.append(float(logprobs[i]))
        rows[r].finish = finish_reason(rows[r], params, limit, eos_ids, decode)
    if params.deadline is not None and time.monotonic() >= params.deadline:
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
        row.keep = tokens_before(row.tokens, text[: min(stops)], decode)
        return "stop"
    if delimiter_at >= 0:
        return "delimiter"
    return "length" if len(row.tokens) >= limit else None


def tokens_before(tokens: Sequence[int], kept_text: str, decode: Decode) -> int:
    """The most leading tokens whose text lies within kept_text (before a stop string)."""
    for m in range(len(tokens) - 1, -1, -1):
        if kept_text.startswith(decode(tokens[:m])):
            return m
    return 0


def to_candidate(row: Row, decode: Decode) -> Candidate:
    """The finished row as the search sees it (cut before a stop string when one hit)."""
    keep = len(row.tokens) if row.keep is None else row.keep
    tokens = tuple(row.tokens[:keep])
    return Candidate(tokens, decode(tokens), tuple(row.logprobs[:keep]), row.finish or "length")


def check_count(num_candidates: Any) -> None:
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
