"""The HTTP client of one server of one role: URL, key, timeouts, bounded retries.

Every request goes through one retry loop (`OpenAIServer._send`): connection failures only
are retried, each attempt's timeout is what is left of the call's deadline (capped by
timeout_s), and every other failure becomes ServerUnavailableError, ServerResponseError or
DeadlineExceededError naming role and URL. `served_model` is the health check every model
on a server (language or reward) runs at construction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterator

from specs_engine.backends.openai.loop import run_sync
from specs_engine.errors import (
    ConfigError,
    DeadlineExceededError,
    MissingExtraError,
    ServerResponseError,
    ServerUnavailableError,
    SpecsError,
)

API_KEY_ENV = "SPECS_OPENAI_API_KEY"
"""Environment variable read when no api_key is given (not OPENAI_API_KEY: a real OpenAI
key must never be sent to a self-hosted server by accident)."""

HEALTH_CHECK_S = 10.0
"""Seconds (after connecting) a server has to list its models while an engine is built."""

JSON_HEADERS = {"Content-Type": "application/json"}


def normalize_base_url(base_url: str) -> str:
    """'http://host:8000/v1/' and 'http://host:8000' name the same server."""
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(
            f"base_url={base_url!r} is not allowed: base_url must be an http(s) URL "
            "such as 'http://127.0.0.1:8000'"
        )
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def field(obj: Any, key: str, where: str) -> Any:
    """obj[key] of a server's JSON answer, or ServerResponseError naming the endpoint."""
    if not isinstance(obj, dict) or key not in obj:
        raise ServerResponseError(f"{where} answered without the field {key!r}")
    return obj[key]


@dataclass
class TrafficStats:
    """What went over the wire; the prefix-cache benchmark reads it."""

    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


class OpenAIServer:
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
        return f"OpenAIServer(role={self.role!r}, base_url={self.base_url!r})"

    def where(self, path: str) -> str:
        """How messages name an endpoint: role and full URL."""
        return f"{self.role} server {self.base_url}{path}"

    def redact(self, text: str) -> str:
        """A server may echo the key back in an error body; never pass it on."""
        return text.replace(self._secret, "***") if self._secret else text

    async def get_json(self, path: str, deadline: float | None = None) -> Any:
        """GET path and parse the JSON answer."""
        response = await self._send("GET", path, None, deadline)
        return self._parse(path, response.content)

    async def post_json(self, path: str, payload: dict, deadline: float | None = None) -> Any:
        """POST a JSON payload and parse the JSON answer."""
        response = await self._send("POST", path, payload, deadline)
        return self._parse(path, response.content)

    async def tokenize(self, request: dict, deadline: float | None = None) -> list[int]:
        """POST /tokenize (request: the model and a prompt or messages): the server's
        tokenizer, and chat template, decide the ids."""
        where = self.where("/tokenize")
        tokens = field(await self.post_json("/tokenize", request, deadline), "tokens", where)
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise ServerResponseError(f"{where} returned non-id tokens")
        return tokens

    async def stream_events(
        self, path: str, payload: dict, deadline: float | None
    ) -> AsyncIterator[dict]:
        """POST with stream=True and yield each server-sent event's JSON. The caller bounds
        the whole iteration with wait_for; a connection failure before any event is retried."""
        response = await self._send("POST", path, payload, deadline, stream=True)
        try:
            with self._failures(path, deadline, self.timeout_s):
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
        finally:
            await response.aclose()

    async def _send(
        self, method: str, path: str, payload: dict | None, deadline: float | None,
        stream: bool = False,
    ) -> Any:
        """The one retry loop. Retry connection failures only: a request that reached the
        server may have been half-processed, and a timeout means the deadline is spent
        anyway. Returns a 200 response (its body read unless stream)."""
        data = None if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        retryable = (self._httpx.ConnectError, self._httpx.ConnectTimeout)
        for attempt in range(self.retries + 1):
            try:
                return await self._attempt(method, path, data, deadline, stream)
            except retryable as exc:
                if attempt == self.retries:
                    raise self._unavailable(path, exc) from None
                await asyncio.sleep(min(0.2 * 2**attempt, _left(deadline)))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self, method: str, path: str, data: bytes | None, deadline: float | None, stream: bool
    ) -> Any:
        """One request, bounded by what is left of the deadline (connect, send, headers)."""
        timeout, total = self._timeout(deadline)
        self.traffic.requests += 1
        self.traffic.bytes_sent += len(data or b"")
        client = self._client_on_loop()
        request = client.build_request(
            method, self.base_url + path, content=data, timeout=timeout, headers=JSON_HEADERS
        )
        with self._failures(path, deadline, total):
            response = await asyncio.wait_for(client.send(request, stream=stream), total)
            if stream and response.status_code != 200:
                await response.aread()
                await response.aclose()
        if not stream:
            self.traffic.bytes_received += len(response.content)
        if response.status_code != 200:
            self._check_status(path, response.status_code, response.content)
        return response

    @contextlib.contextmanager
    def _failures(self, path: str, deadline: float | None, total: float) -> Iterator[None]:
        """Name a failed read or a timeout; connection failures pass on to the retry loop."""
        httpx = self._httpx
        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise
        except (asyncio.TimeoutError, httpx.TimeoutException) as exc:
            raise self._timed_out(path, deadline, total, exc) from None
        except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
            raise self._unavailable(path, exc) from None

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

    def _parse(self, path: str, body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError as exc:
            snippet = self.redact(body[:200].decode("utf-8", "replace"))
            raise ServerResponseError(
                f"{self.where(path)} returned malformed JSON ({exc}): {snippet!r}"
            ) from None

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


def _left(deadline: float | None) -> float:
    return 1e9 if deadline is None else max(0.0, deadline - time.monotonic())


def served_model(server: OpenAIServer, model: str | None) -> tuple[str, int]:
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
    served = {m.get("id"): m for m in field(listing, "data", server.where("/v1/models"))
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
