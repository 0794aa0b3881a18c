"""The one background event loop every openai-backend role submits its requests to.

Why a background event loop: the LanguageModel protocol is synchronous, but a hung server
must not hold a call past its deadline. Each request runs as a coroutine on one shared
loop thread under asyncio.wait_for(remaining time), so the deadline covers connect, send
and every read; the pooled httpx.AsyncClient reuses connections across calls.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Awaitable, Callable, TypeVar

T = TypeVar("T")

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """The one event loop (a daemon thread) every openai-backend role submits its requests to."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="specs-http", daemon=True).start()
        return _loop


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on the background loop and wait for it (its own timeouts bound it)."""
    if _running_on(background_loop()):
        raise RuntimeError("openai-backend roles cannot be called from their own I/O thread")
    return asyncio.run_coroutine_threadsafe(_call(make), background_loop()).result()


async def _call(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def _running_on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
