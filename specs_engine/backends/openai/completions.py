"""Reading a vLLM server's completions: streamed proposal chunks into candidates, and
prompt log-probs into target scores. Every number is checked as it arrives (ids and
log-probs agree in count, a log-prob is <= 0, each prompt log-prob belongs to the token
sent): a malformed answer raises ServerResponseError instead of becoming a wrong score.
"""

from __future__ import annotations

from typing import Any

from specs_engine.backends.candidates import reported_finish_reason, text_before_stop, tokens_within
from specs_engine.backends.openai.client import field
from specs_engine.errors import ServerResponseError
from specs_engine.models import Candidate, ProposalParams


class Growing:
    """One candidate being streamed in: ids, log-probs, text and how it ended."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.logprobs: list[float] = []
        self.offsets: list[int] = []
        """Where each token's text starts in the candidate's text (vLLM's text_offset)."""
        self.text = ""
        self.finish: str | None = None
        self.stop_reason: Any = None

    def candidate(self, params: ProposalParams) -> Candidate:
        reason = reported_finish_reason(self.finish, self.stop_reason, params.delimiter)
        if reason != "stop":
            return Candidate(tuple(self.ids), self.text, tuple(self.logprobs), reason)
        keep = tokens_within(len(self.ids), text_before_stop(self.text, self.stop_reason), self._text_of)
        return Candidate(tuple(self.ids[:keep]), self._text_of(keep), tuple(self.logprobs[:keep]), "stop")

    def _text_of(self, count: int) -> str:
        """The text of the first count tokens, from the offsets the server streamed."""
        ends = self.offsets[1:] + [len(self.text)]
        return self.text[: ends[count - 1]] if count else ""


def grow(drafts: list[Growing], choice: Any, where: str) -> None:
    """Add one streamed chunk to its candidate, refusing chunks whose ids and log-probs
    disagree in number: a score must never be paired with the wrong token."""
    index = field(choice, "index", where)
    if not isinstance(index, int) or not 0 <= index < len(drafts):
        raise ServerResponseError(f"{where} streamed a choice index {index!r} out of range")
    logprobs = field(choice, "logprobs", where) or {}
    tokens = logprobs.get("tokens") or []
    values = logprobs.get("token_logprobs") or []
    if len(tokens) != len(values):
        raise ServerResponseError(
            f"{where} streamed {len(tokens)} tokens with {len(values)} log-probs"
        )
    draft = drafts[index]
    offsets = logprobs.get("text_offset") or [len(draft.text)] * len(tokens)
    draft.offsets += [int(o) for o in offsets[: len(tokens)]]
    draft.ids += [_token_id(t, where) for t in tokens]
    draft.logprobs += [_number(v, where) for v in values]
    draft.text += choice.get("text") or ""
    if choice.get("finish_reason") is not None:
        if choice["finish_reason"] not in ("stop", "length"):
            raise ServerResponseError(
                f"{where} ended a candidate with finish_reason={choice['finish_reason']!r}"
            )
        draft.finish, draft.stop_reason = choice["finish_reason"], choice.get("stop_reason")


def _token_id(token: Any, where: str) -> int:
    """'token_id:123' (return_tokens_as_token_ids) -> 123."""
    if isinstance(token, str) and token.startswith("token_id:"):
        try:
            return int(token[len("token_id:"):])
        except ValueError:
            pass
    raise ServerResponseError(
        f"{where} returned token {token!r} instead of 'token_id:N'; the server must "
        "support return_tokens_as_token_ids (vLLM >= 0.6)"
    )


def _number(value: Any, where: str) -> float:
    """A log-prob: a number <= 0 (-inf allowed: a token of probability 0; +inf or NaN
    would poison every score they enter)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value <= 1e-3:
        raise ServerResponseError(f"{where} returned log-prob {value!r}; a log-prob is a number <= 0")
    return float(value)


def prompt_logprobs(
    answer: Any, pairs: list[tuple[list[int], list[int]]], where: str
) -> list[list[float]]:
    """The continuation's log-probs of each choice, checked token by token."""
    choices = sorted(field(answer, "choices", where), key=lambda c: c.get("index", -1))
    if len(choices) != len(pairs):
        raise ServerResponseError(f"{where} answered {len(choices)} choices for {len(pairs)} prompts")
    return [_continuation_logprobs(c, p, cont, where) for c, (p, cont) in zip(choices, pairs)]


def _continuation_logprobs(choice: Any, prefix: list[int], cont: list[int], where: str) -> list[float]:
    entries = field(choice, "prompt_logprobs", where)
    if not isinstance(entries, list) or len(entries) != len(prefix) + len(cont):
        got = len(entries) if isinstance(entries, list) else entries
        raise ServerResponseError(
            f"{where} returned {got} prompt log-probs for {len(prefix) + len(cont)} tokens sent"
        )
    out = []
    for token, entry in zip(cont, entries[len(prefix):]):
        if not isinstance(entry, dict) or str(token) not in entry:
            raise ServerResponseError(
                f"{where} returned a prompt log-prob for another token than id {token}"
            )
        out.append(_number(field(entry[str(token)], "logprob", where), where))
    return out
