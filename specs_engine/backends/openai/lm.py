"""Remote roles over HTTP: each model behind its own vLLM OpenAI-compatible server.

`OpenAICompatLM` is a draft or target LanguageModel: proposals stream from
/v1/completions (token-id prompts, n, stop, seed, log-probs as token ids), target scores
come from the same endpoint with prompt_logprobs=0 and max_tokens=1, and tokenisation is
the server's own /tokenize, so the client needs no weights. `load(location, **kwargs)` is
what backends/__init__.py dispatches backend="openai" to; the reward lives in
backends/openai/reward.py and shares the plumbing below.

Why a background event loop: the LanguageModel protocol is synchronous, but a hung server
must not hold a call past its deadline. Each request runs as a coroutine on one shared
loop thread under asyncio.wait_for(remaining time), so the deadline covers connect, send
and every read; the pooled httpx.AsyncClient reuses connections across calls.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from dataclasses import dataclass
import hashlib
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence, TypeVar

from specs_engine.call_context import current_deadline
from specs_engine.errors import (
    ConfigError,
    DeadlineExceededError,
    MissingExtraError,
    ServerResponseError,
    ServerUnavailableError,
    SpecsError,
)
from specs_engine.backends.candidates import (
    check_count, pair_up, prefix_seed, reported_finish_reason, stop_strings, text_before_stop,
    tokens_within,
)
from specs_engine.models import Candidate, Prompt, ProposalParams

API_KEY_ENV = "SPECS_OPENAI_API_KEY"
"""Environment variable read when no api_key is given (not OPENAI_API_KEY: a real OpenAI
key must never be sent to a self-hosted server by accident)."""

T = TypeVar("T")

HEALTH_CHECK_S = 10.0
"""Seconds (after connecting) a server has to list its models while an engine is built."""


_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """The one event loop (a daemon thread) every remote role submits its requests to."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="specs-http", daemon=True).start()
        return _loop


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on the background loop and wait for it (its own timeouts bound it)."""
    if _running_on(background_loop()):
        raise RuntimeError("remote roles cannot be called from their own I/O thread")
    return asyncio.run_coroutine_threadsafe(_call(make), background_loop()).result()


async def _call(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def _running_on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def normalize_base_url(base_url: str) -> str:
    """'http://host:8000/v1/' and 'http://host:8000' name the same server."""
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(
            f"base_url={base_url!r} is not allowed: base_url must be an http(s) URL "
            "such as 'http://127.0.0.1:8000'"
        )
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


@dataclass
class TrafficStats:
    """What went over the wire; the prefix-cache benchmark reads it."""

    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


class HttpServer:
    """One server of one role: URL, key, timeouts, bounded retries, traffic counters.

    The key lives only in the Authorization header; it never enters repr, messages or logs.
    """

    def __init__(
        self,
        base_url: str,
        role: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        retries: int = 2,
    ):
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - httpx is in the test deps
            raise MissingExtraError("httpx", "openai") from exc
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries={retries!r} is not allowed: retries must be an integer >= 0")
        for name, value in (("timeout_s", timeout_s), ("connect_timeout_s", connect_timeout_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name}={value!r} is not allowed: {name} must be a number > 0")
        self._httpx = httpx
        self.base_url = normalize_base_url(base_url)
        self.role = role
        self.timeout_s, self.connect_timeout_s, self.retries = timeout_s, connect_timeout_s, retries
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._secret = key or None
        self._client: Any = None
        self.traffic = TrafficStats()

    def __repr__(self) -> str:
        return f"HttpServer(role={self.role!r}, base_url={self.base_url!r})"

    def where(self, path: str) -> str:
        """How messages name an endpoint: role and full URL."""
        return f"{self.role} server {self.base_url}{path}"

    def redact(self, text: str) -> str:
        """A server may echo the key back in an error body; never pass it on."""
        return text.replace(self._secret, "***") if self._secret else text

    def _client_on_loop(self) -> Any:
        if self._client is None:
            limits = self._httpx.Limits(max_connections=64, max_keepalive_connections=16)
            self._client = self._httpx.AsyncClient(headers=self._headers, limits=limits)
        return self._client

    def _timeout(self, deadline: float | None) -> tuple[Any, float]:
        total = self.timeout_s
        if deadline is not None:
            total = min(total, deadline - time.monotonic())
            if total <= 0:
                raise DeadlineExceededError(f"{self.role} server {self.base_url}: the call's deadline passed before the request")
        return self._httpx.Timeout(total, connect=min(self.connect_timeout_s, total)), total

    async def get_json(self, path: str, deadline: float | None = None) -> Any:
        """GET path and parse the JSON answer."""
        body = await self._with_retries("GET", path, None, deadline)
        return self._parse(path, body)

    async def post_json(self, path: str, payload: dict, deadline: float | None = None) -> Any:
        """POST a JSON payload and parse the JSON answer."""
        body = await self._with_retries("POST", path, payload, deadline)
        return self._parse(path, body)

    def _parse(self, path: str, body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError as exc:
            snippet = self.redact(body[:200].decode("utf-8", "replace"))
            raise ServerResponseError(
                f"{self.where(path)} returned malformed JSON ({exc}): {snippet!r}"
            ) from None

    async def _with_retries(
        self, method: str, path: str, payload: dict | None, deadline: float | None
    ) -> bytes:
        """Retry connection failures only: a request that reached the server may have
        been half-processed, and a timeout means the deadline is spent anyway."""
        retryable = (self._httpx.ConnectError, self._httpx.ConnectTimeout)
        for attempt in range(self.retries + 1):
            try:
                return await self._once(method, path, payload, deadline)
            except retryable as exc:
                if attempt == self.retries:
                    raise self._unavailable(path, exc) from None
                await asyncio.sleep(min(0.2 * 2**attempt, self._left(deadline)))
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _left(deadline: float | None) -> float:
        return 1e9 if deadline is None else max(0.0, deadline - time.monotonic())

    async def _once(
        self, method: str, path: str, payload: dict | None, deadline: float | None
    ) -> bytes:
        timeout, total = self._timeout(deadline)
        data = None if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        self._count_sent(data)
        try:
            response = await asyncio.wait_for(
                self._client_on_loop().request(
                    method, self.base_url + path, content=data, timeout=timeout,
                    headers={"Content-Type": "application/json"},
                ),
                total,
            )
        except (asyncio.TimeoutError, self._httpx.ReadTimeout, self._httpx.WriteTimeout,
                self._httpx.PoolTimeout) as exc:
            raise self._timed_out(path, deadline, total, exc) from None
        except (self._httpx.ReadError, self._httpx.RemoteProtocolError) as exc:
            raise self._unavailable(path, exc) from None
        self.traffic.bytes_received += len(response.content)
        self._check_status(path, response.status_code, response.content)
        return response.content

    def _count_sent(self, data: bytes | None) -> None:
        self.traffic.requests += 1
        self.traffic.bytes_sent += len(data or b"")

    async def stream_events(
        self, path: str, payload: dict, deadline: float | None
    ) -> AsyncIterator[dict]:
        """POST with stream=True and yield each server-sent event's JSON. The caller bounds
        the whole iteration with wait_for; a connection failure before any event is retried."""
        timeout, _ = self._timeout(deadline)
        data = json.dumps(payload, separators=(",", ":")).encode()
        retryable = (self._httpx.ConnectError, self._httpx.ConnectTimeout)
        for attempt in range(self.retries + 1):
            self._count_sent(data)
            try:
                async for event in self._events(path, data, timeout):
                    yield event
                return
            except retryable as exc:
                if attempt == self.retries:
                    raise self._unavailable(path, exc) from None
                await asyncio.sleep(min(0.2 * 2**attempt, self._left(deadline)))
            except (self._httpx.ReadError, self._httpx.RemoteProtocolError) as exc:
                raise self._unavailable(path, exc) from None
            except self._httpx.TimeoutException as exc:
                raise self._timed_out(path, deadline, self.timeout_s, exc) from None

    async def _events(self, path: str, data: bytes, timeout: Any) -> AsyncIterator[dict]:
        client = self._client_on_loop()
        headers = {"Content-Type": "application/json"}
        async with client.stream(
            "POST", self.base_url + path, content=data, timeout=timeout, headers=headers
        ) as response:
            if response.status_code != 200:
                body = await response.aread()
                self._check_status(path, response.status_code, body)
            async for line in response.aiter_lines():
                self.traffic.bytes_received += len(line) + 1
                if not line.startswith("data:"):
                    continue
                chunk = line[5:].strip()
                if chunk == "[DONE]":
                    return
                event = self._parse(path, chunk.encode())
                if not isinstance(event, dict):
                    raise ServerResponseError(f"{self.where(path)} streamed {chunk[:80]!r}")
                yield event

    def _check_status(self, path: str, status: int, body: bytes) -> None:
        if status in (401, 403):
            raise ServerUnavailableError(
                f"{self.where(path)} rejected the API key (HTTP {status}); pass api_key= "
                f"or set ${API_KEY_ENV}"
            )
        if status != 200:
            snippet = self.redact(body[:300].decode("utf-8", "replace"))
            raise ServerResponseError(f"{self.where(path)} answered HTTP {status}: {snippet}")

    def _unavailable(self, path: str, exc: BaseException) -> ServerUnavailableError:
        return ServerUnavailableError(
            f"{self.where(path)} is unreachable ({type(exc).__name__}: "
            f"{self.redact(str(exc)) or 'no detail'}); is the server running at that URL?"
        )

    def _timed_out(
        self, path: str, deadline: float | None, total: float, exc: BaseException
    ) -> SpecsError:
        if deadline is not None and time.monotonic() >= deadline - 0.05:
            return DeadlineExceededError(
                f"{self.where(path)} gave no answer before the call's deadline"
            )
        return ServerUnavailableError(
            f"{self.where(path)} gave no answer within {total:.1f} s "
            f"({type(exc).__name__}); the server may be hung or overloaded"
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


FINGERPRINT_PROBE = (
    "SPECS probe: Natalia sold 48/2 = 24 clips in May.\n\n"
    "Step 2: 48 + 24 = 72. \\boxed{72} #### 72\n"
    "def f(x):\n\treturn x ** 2  # naïve café 数学 😀 <|im_end|>"
)
"""Text whose token ids stand in for the tokenizer: two servers that split it the same way
(special tokens included) are taken to share a tokenizer, so ids pass unchanged."""


class OpenAICompatLM:
    """A draft or target model served by a vLLM OpenAI-compatible server.

    Example::

        target = OpenAICompatLM("http://127.0.0.1:8001", role="target")
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
        self.server = HttpServer(
            base_url, role, api_key=api_key, timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s, retries=retries,
        )
        self.role = role
        self.name, self.context_window = served_model(self.server, model)
        self.tokenizer_fingerprint = tokenizer_fingerprint or self._probe_fingerprint()

    def __repr__(self) -> str:
        return f"OpenAICompatLM(role={self.role!r}, model={self.name!r}, base_url={self.server.base_url!r})"

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
        answer = run_sync(lambda: self.server.post_json("/tokenize", payload, deadline))
        tokens = _field(answer, "tokens", self.server.where("/tokenize"))
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise ServerResponseError(f"{self.server.where('/tokenize')} returned non-id tokens")
        return tokens

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
        drafts = [_Growing() for _ in range(n)]
        try:
            await self._stream_into(drafts, payload, params.deadline)
        except DeadlineExceededError:
            pass  # anytime: what arrived before the deadline is returned, flagged
        return [d.candidate(params) for d in drafts]

    async def _stream_into(
        self, drafts: list[_Growing], payload: dict, deadline: float | None
    ) -> None:
        where = self.server.where("/v1/completions")

        async def consume() -> None:
            async for event in self.server.stream_events("/v1/completions", payload, deadline):
                for choice in _field(event, "choices", where):
                    _grow(drafts, choice, where)

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
        scored = _prompt_logprobs(answer, [pairs[i] for i in todo],
                                  self.server.where("/v1/completions"))
        out: list[list[float]] = [[] for _ in pairs]
        for i, logprobs in zip(todo, scored):
            out[i] = logprobs
        return out

    def close(self) -> None:
        """Close pooled connections (also done at interpreter exit)."""
        run_sync(self.server.aclose)


def served_model(server: HttpServer, model: str | None) -> tuple[str, int]:
    """The served model's name and context window, read from GET /v1/models: a server
    that is down or does not serve `model` fails at engine start, naming URL and role,
    rather than mid-search. Every model on a server (language or reward) checks this."""
    wait_s = min(server.timeout_s, server.connect_timeout_s + HEALTH_CHECK_S)
    try:
        listing = run_sync(lambda: server.get_json("/v1/models", time.monotonic() + wait_s))
    except DeadlineExceededError:  # no call exists yet: a hung server, not a spent budget
        raise ServerUnavailableError(
            f"{server.where('/v1/models')} gave no answer within {wait_s:.0f} s while the "
            "engine was being built; the server may be hung or still starting"
        ) from None
    served = {m.get("id"): m for m in _field(listing, "data", server.where("/v1/models"))
              if isinstance(m, dict)}
    if model is None and len(served) == 1:
        model = next(iter(served))
    if model not in served:
        raise ConfigError(
            f"model={model!r} is not allowed: the {server.where('/v1/models')} "
            f"serves {sorted(map(str, served))}; pass one of them as model="
        )
    window = served[model].get("max_model_len")
    if not isinstance(window, int) or window < 1:
        raise ServerResponseError(
            f"{server.where('/v1/models')} gave no max_model_len for {model!r}"
        )
    return model, window


def _field(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ServerResponseError(f"{where} answered without the field {key!r}")
    return obj[key]


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


class _Growing:
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


def _grow(drafts: list[_Growing], choice: Any, where: str) -> None:
    """Add one streamed chunk to its candidate, refusing chunks whose ids and log-probs
    disagree in number: a score must never be paired with the wrong token."""
    index = _field(choice, "index", where)
    if not isinstance(index, int) or not 0 <= index < len(drafts):
        raise ServerResponseError(f"{where} streamed a choice index {index!r} out of range")
    logprobs = _field(choice, "logprobs", where) or {}
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


def _prompt_logprobs(
    answer: Any, pairs: list[tuple[list[int], list[int]]], where: str
) -> list[list[float]]:
    """The continuation's log-probs of each choice, checked token by token."""
    choices = sorted(_field(answer, "choices", where), key=lambda c: c.get("index", -1))
    if len(choices) != len(pairs):
        raise ServerResponseError(f"{where} answered {len(choices)} choices for {len(pairs)} prompts")
    return [_continuation_logprobs(c, p, cont, where) for c, (p, cont) in zip(choices, pairs)]


def _continuation_logprobs(choice: Any, prefix: list[int], cont: list[int], where: str) -> list[float]:
    entries = _field(choice, "prompt_logprobs", where)
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
        out.append(_number(_field(entry[str(token)], "logprob", where), where))
    return out


def load(location: str, *, dtype: Any = None, device: Any = None, **kwargs: Any) -> OpenAICompatLM:
    """backend="openai": `location` is the server's base URL; kwargs go to OpenAICompatLM
    (model, role, api_key, timeout_s, connect_timeout_s, retries, tokenizer_fingerprint).
    dtype and device are the server's business (its command line) and are ignored here."""
    return OpenAICompatLM(location, **kwargs)
