"""The deadline and the queue time of the call a thread is working for.

The LanguageModel and RewardModel protocols carry a deadline only where a proposal or a
target score needs one; tokenisation and reward scoring have none in their signatures.
Rather than widen every signature, the engine opens a CallContext at the call's entry
(a contextvar, copied into the worker threads the call uses), and the code that can wait
reads it: a remote request times out at the deadline, an in-process reward checks it
between sequences, and a shared model's lock adds its wait to the call's queue time.
"""

from __future__ import annotations

import contextvars
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from specs_engine.errors import DeadlineExceededError


@dataclass
class CallContext:
    """One call: its time.monotonic() deadline (None: unlimited) and seconds spent
    waiting for models other calls were using."""

    deadline: Optional[float] = None
    queued_s: float = 0.0
    load_s: float = 0.0
    """Seconds spent loading models for this call before it entered the engine."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_queued(self, seconds: float) -> None:
        with self._lock:  # the target and the reward may wait at once, in two threads
            self.queued_s += seconds


_current: contextvars.ContextVar[Optional[CallContext]] = contextvars.ContextVar(
    "specs_call", default=None
)


_loading: contextvars.ContextVar[float] = contextvars.ContextVar("specs_load_s", default=0.0)


def note_load(seconds: float) -> None:
    """A caller (an integration building its engine lazily) spent `seconds` loading models
    for the call it is about to make; that call reports them as stats.load_s."""
    _loading.set(_loading.get() + seconds)


def take_load() -> float:
    """The load time noted in this context since the last call took it (once)."""
    seconds = _loading.get()
    _loading.set(0.0)
    return seconds


def current() -> Optional[CallContext]:
    return _current.get()


def current_deadline() -> Optional[float]:
    """The running call's deadline (time.monotonic() seconds), or None outside a call."""
    call = _current.get()
    return None if call is None else call.deadline


@contextmanager
def opened(call: CallContext) -> Iterator[CallContext]:
    """Makes `call` the current call in this thread (and in threads started via in_call)."""
    token = _current.set(call)
    try:
        yield call
    finally:
        _current.reset(token)


def in_call(fn: Callable[..., Any]) -> Callable[..., Any]:
    """fn bound to this thread's current call, for running in a pool's worker thread."""
    context = contextvars.copy_context()
    return lambda *args, **kwargs: context.run(fn, *args, **kwargs)


def check_deadline(where: str) -> None:
    """Raises DeadlineExceededError once the current call's deadline has passed: for
    work done in pieces (a reward scoring solution after solution) to stop between them."""
    deadline = current_deadline()
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExceededError(f"{where}: the call's deadline passed")


@contextmanager
def queued(lock: Any, until_deadline: bool = False) -> Iterator[None]:
    """Holds a model's lock; the wait for it counts as the current call's queue time.
    until_deadline: give up at the call's deadline (DeadlineExceededError) rather than
    queue past it behind other calls: model work, as opposed to a quick tokenisation."""
    started = time.monotonic()
    call = _current.get()
    deadline = call.deadline if call is not None and until_deadline else None
    if deadline is None:
        lock.acquire()
    elif not lock.acquire(timeout=max(deadline - started, 0.0)):
        call.add_queued(time.monotonic() - started)
        raise DeadlineExceededError("the call's deadline passed while other calls held the model")
    try:
        if call is not None:
            call.add_queued(time.monotonic() - started)
        yield
    finally:
        lock.release()
