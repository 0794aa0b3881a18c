"""The openai backend's language models: each behind its own vLLM OpenAI-compatible server.

`OpenAILM` is a draft or target LanguageModel: proposals stream from
/v1/completions (token-id prompts, n, stop, seed, log-probs as token ids), target scores
come from the same endpoint with prompt_logprobs=0 and max_tokens=1, and tokenisation is
the server's own /tokenize, so the client needs no weights. `load(location, **kwargs)` is
what backends/__init__.py dispatches backend="openai" to. The plumbing is client.py (one
HTTP client, one retry loop) on loop.py (the background event loop); reading the answers
is completions.py; the reward lives in reward.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any, Sequence

from specs_engine.backends.candidates import check_count, pair_up, prefix_seed, stop_strings
from specs_engine.backends.openai.client import OpenAIServer, field, served_model
from specs_engine.backends.openai.completions import Growing, grow, prompt_logprobs
from specs_engine.backends.openai.loop import run_sync
from specs_engine.call_context import current_deadline
from specs_engine.errors import DeadlineExceededError
from specs_engine.models import Candidate, Prompt, ProposalParams


FINGERPRINT_PROBE = (
    "SPECS probe: Natalia sold 48/2 = 24 clips in May.\n\n"
    "Step 2: 48 + 24 = 72. \\boxed{72} #### 72\n"
    "def f(x):\n\treturn x ** 2  # naïve café 数学 😀 <|im_end|>"
)
"""Text whose token ids stand in for the tokenizer: two servers that split it the same way
(special tokens included) are taken to share a tokenizer, so ids pass unchanged."""


class OpenAILM:
    """A draft or target model served by a vLLM OpenAI-compatible server.

    Example::

        target = OpenAILM("http://127.0.0.1:8001", role="target")
        ids = target.encode_prompt("What is 2 + 3?")
        [[candidate]] = target.propose([ids], 1, ProposalParams(delimiter="\\n\\n",
                                                                max_new_tokens=64))

    Start the draft's server with ``--logprobs-mode processed_logprobs`` so proposal
    log-probs are those of the distribution actually sampled (temperature and top-p
    applied), which the importance ratio needs; target scores are prompt log-probs,
    which vLLM always returns untempered.
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        role: str = "model",
        api_key: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        retries: int = 2,
        tokenizer_fingerprint: str | None = None,
    ):
        self.server = OpenAIServer(
            base_url, role, api_key=api_key, timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s, retries=retries,
        )
        self.role = role
        self.name, self.context_window = served_model(self.server, model)
        self.tokenizer_fingerprint = tokenizer_fingerprint or self._probe_fingerprint()

    def __repr__(self) -> str:
        return f"OpenAILM(role={self.role!r}, model={self.name!r}, base_url={self.server.base_url!r})"

    def _probe_fingerprint(self) -> str:
        ids = self._tokenize({"prompt": FINGERPRINT_PROBE, "add_special_tokens": False})
        digest = hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]
        return f"probe-sha256:{digest}"

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """The server's tokenizer (and chat template, for messages) decides the ids."""
        if isinstance(prompt, str):
            return self._tokenize({"prompt": prompt, "add_special_tokens": True})
        messages = [dict(m) for m in prompt]
        return self._tokenize(
            {"messages": messages, "add_generation_prompt": True, "add_special_tokens": False}
        )

    def encode(self, text: str) -> list[int]:
        return self._tokenize({"prompt": text, "add_special_tokens": False})

    def _tokenize(self, request: dict) -> list[int]:
        payload = {"model": self.name, **request}
        deadline = current_deadline()  # inside a call, tokenising counts against its budget
        return run_sync(lambda: self.server.tokenize(payload, deadline))

    def propose(
        self, prefixes: Sequence[Sequence[int]], num_candidates: int, params: ProposalParams
    ) -> list[list[Candidate]]:
        """One streamed request per prefix, all in flight at once. Each prefix gets its own
        seed: one seed for all would give every beam the same noise. At the deadline the
        tokens streamed so far come back with finish_reason "deadline"."""
        check_count(num_candidates)
        return run_sync(lambda: self._propose_all(prefixes, num_candidates, params))

    async def _propose_all(
        self, prefixes: Sequence[Sequence[int]], n: int, params: ProposalParams
    ) -> list[list[Candidate]]:
        rounds = [self._propose_one(list(p), n, params, i) for i, p in enumerate(prefixes)]
        return list(await asyncio.gather(*rounds))

    async def _propose_one(
        self, prefix: list[int], n: int, params: ProposalParams, index: int
    ) -> list[Candidate]:
        room = self.context_window - len(prefix)
        if room < 1:
            return [Candidate((), "", (), "length") for _ in range(n)]
        payload = _proposal_payload(self.name, prefix, n, params, index, room)
        drafts = [Growing() for _ in range(n)]
        try:
            await self._stream_into(drafts, payload, params.deadline)
        except DeadlineExceededError:
            pass  # anytime: what arrived before the deadline is returned, flagged
        return [d.candidate(params) for d in drafts]

    async def _stream_into(
        self, drafts: list[Growing], payload: dict, deadline: float | None
    ) -> None:
        where = self.server.where("/v1/completions")

        async def consume() -> None:
            async for event in self.server.stream_events("/v1/completions", payload, deadline):
                for choice in field(event, "choices", where):
                    grow(drafts, choice, where)

        if deadline is None:
            await consume()
            return
        try:
            await asyncio.wait_for(consume(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise DeadlineExceededError(f"{where} was still generating at the deadline") from None

    def score(
        self,
        prefixes: Sequence[Sequence[int]],
        continuations: Sequence[Sequence[int]],
        *,
        deadline: float | None = None,
    ) -> list[list[float]]:
        """One request for every pair: prompt log-probs of prefix + continuation, of which
        the continuation's are kept. Each returned entry is checked against the token id
        sent, so a misaligned answer raises instead of becoming a wrong score."""
        pairs, todo = pair_up(prefixes, continuations)
        if not todo:
            return [[] for _ in pairs]
        payload = {
            "model": self.name, "prompt": [pairs[i][0] + pairs[i][1] for i in todo],
            "max_tokens": 1, "temperature": 1.0, "prompt_logprobs": 0,
        }
        answer = run_sync(lambda: self.server.post_json("/v1/completions", payload, deadline))
        scored = prompt_logprobs(answer, [pairs[i] for i in todo],
                                  self.server.where("/v1/completions"))
        out: list[list[float]] = [[] for _ in pairs]
        for i, logprobs in zip(todo, scored):
            out[i] = logprobs
        return out

    def close(self) -> None:
        """Close pooled connections (also done at interpreter exit)."""
        run_sync(self.server.aclose)


def _proposal_payload(
    model: str, prefix: list[int], n: int, params: ProposalParams, index: int, room: int
) -> dict:
    payload = {
        "model": model, "prompt": prefix, "n": n,
        "max_tokens": min(params.max_new_tokens, room),
        "temperature": 0.0 if params.greedy else params.temperature,
        "top_p": 1.0 if params.greedy else params.top_p,
        "stop": stop_strings(params), "include_stop_str_in_output": True,
        "logprobs": 0, "return_tokens_as_token_ids": True, "skip_special_tokens": False,
        "stream": True,
    }
    if params.seed is not None:
        payload["seed"] = prefix_seed(params.seed, index)
    return payload


def load(location: str, *, dtype: Any = None, device: Any = None, **kwargs: Any) -> OpenAILM:
    """backend="openai": `location` is the server's base URL; kwargs go to OpenAILM
    (model, role, api_key, timeout_s, connect_timeout_s, retries, tokenizer_fingerprint).
    dtype and device are the server's business (its command line) and are ignored here."""
    return OpenAILM(location, **kwargs)


OpenAICompatLM = OpenAILM
"""The name docs/deployment.md showed before the runtime had one name; kept importable."""
