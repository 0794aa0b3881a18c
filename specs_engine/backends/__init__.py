"""Where language models come from: one loader, a backend per runtime, one shared cache.

Loading the same model twice in one process returns the same object, so integrations
that re-create their wrapper per call (LangChain's configurable_fields) never reload.

Each backend is a module with a `load(location, *, dtype, device, **kwargs)` function,
imported only when asked for, so a missing optional runtime fails with an install hint
instead of breaking `import specs_engine`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from specs_engine.errors import ConfigError, SpecsError
from specs_engine.models import LanguageModel

BACKENDS = {
    "transformers": "specs_engine.backends.transformers",
    "vllm": "specs_engine.backends.vllm",
    "openai": "specs_engine.backends.openai_compat",
}
"""Backend name -> module providing load(location, *, dtype, device, **kwargs)."""

_cache: dict[tuple, Any] = {}
_cache_lock = threading.Lock()
_loads = 0


def resolve_location(location: str | os.PathLike) -> str:
    """A preset name (e.g. "qwen2.5-coder-0.5b") becomes a local path when
    specs_engine.sources knows it; anything else is used as given."""
    location = os.fspath(location)
    if importlib.util.find_spec("specs_engine.sources") is None:
        return location
    from specs_engine import sources

    return os.fspath(sources.resolve(location))


def load_language_model(
    location: str | os.PathLike, backend: str = "transformers", dtype: Any = "bfloat16",
    device: str = "cpu", **kwargs: Any,
) -> LanguageModel:
    """The language model at location, loaded once per process for the same arguments."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r} is not allowed: backend must be one of {', '.join(BACKENDS)}")
    # An openai location is a server URL, not a model to resolve.
    resolved = os.fspath(location) if backend == "openai" else resolve_location(location)
    key = (resolved, backend, str(dtype), str(device), cache_key(kwargs))
    with _cache_lock:  # one lock for all: two threads asking for one model load it once
        if key not in _cache:
            module = importlib.import_module(BACKENDS[backend])
            with named_load_errors("model", resolved):
                _cache[key] = module.load(resolved, dtype=dtype, device=device, **kwargs)
            _count_load()
        return _cache[key]


@contextmanager
def named_load_errors(what: str, location: str) -> Iterator[None]:
    """A library's failure to read a model (a broken config.json, an empty folder, a hub
    id while offline) becomes a ConfigError naming the location, not a raw traceback."""
    try:
        yield
    except SpecsError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "no detail"
        offline = " (HF_HUB_OFFLINE is set: hub ids must already be in the local HF cache)" \
            if os.environ.get("HF_HUB_OFFLINE") and "/" in location and not os.path.exists(location) else ""
        raise ConfigError(
            f"{what} location={location!r} could not be loaded: {type(exc).__name__}: {detail}; "
            f"give a model directory (config.json, tokenizer and safetensors weights), a hub id "
            f"or a registry name{offline}"
        ) from exc


def cache_key(kwargs: dict[str, Any]) -> tuple:
    """A hashable, order-independent form of keyword arguments."""
    return tuple(sorted((name, repr(value)) for name, value in kwargs.items()))


def _count_load() -> None:
    global _loads
    _loads += 1


def load_count() -> int:
    """How many models this process actually loaded (cache misses), for tests."""
    return _loads


def clear_model_cache() -> None:
    """Forget every loaded model (the next load reads from disk again)."""
    with _cache_lock:
        _cache.clear()
