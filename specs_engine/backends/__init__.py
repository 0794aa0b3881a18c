"""Where models come from: one loader for language and reward models, a folder per
runtime (hf/, llamacpp/, vllm/, openai/), one shared cache.

Loading the same model twice in one process returns the same object, so integrations
that re-create their wrapper or engine per call (LangChain's configurable_fields) never
reload.

Each runtime has a module with a `load(location, *, dtype, device, **kwargs)` function per
role, imported only when asked for, so a missing optional runtime fails with an install
hint instead of breaking `import specs_engine`. Runtime folders never import each other:
what they share lives here (candidates.py, prefixes.py, sampling.py, reward_kind.py) or in
specs_engine.rewards.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from specs_engine.errors import ConfigError, SpecsError
from specs_engine.models import LanguageModel, RewardModel

BACKENDS = {
    "transformers": "specs_engine.backends.hf.lm",
    "vllm": "specs_engine.backends.vllm.lm",
    "openai": "specs_engine.backends.openai.lm",
    "llama.cpp": "specs_engine.backends.llamacpp.lm",
}
"""Backend name -> module providing load(location, *, dtype, device, **kwargs)."""

REWARD_BACKENDS = {
    "transformers": "specs_engine.backends.hf.reward",
    "vllm": "specs_engine.backends.vllm.reward",
    "openai": "specs_engine.backends.openai.reward",
}
"""Backend name -> module providing the reward's load(location, *, dtype, device, **kwargs)."""
REWARD_RUNTIME = {"llama.cpp": "transformers"}
"""Backends whose reward runs on another runtime. backend="llama.cpp" runs the language
models' GGUFs while the reward stays on transformers: our value head was trained on the
bf16 draft's hidden states as transformers computes them, and it reads only each step's
new tokens (prefix reuse), so it is a small share of a round."""

SERVING_OPTIONS = {
    "openai": ("api_key", "timeout_s", "connect_timeout_s", "retries"),
    "vllm": ("gpu_memory_utilization", "max_model_len", "enforce_eager"),
}
"""Options that configure a backend's servers or engines, for the reward as for the
language models: SpecsEngine.from_pretrained passes them on to the reward."""

_cache: dict[tuple, Any] = {}
_cache_lock = threading.RLock()
"""Reentrant: loading a value-head reward loads its base language model through the same cache."""
_loads = 0
_MISSING = object()


def choose_backend(backend: str | None, locations: list[str], device: str) -> str:
    """The backend asked for, else the fastest one present for these models: llama.cpp
    when every language model is a registry model (its verified GGUF is in the cache),
    the device is the CPU and llama-cpp-python loads; transformers otherwise."""
    if backend is not None:
        return backend
    from specs_engine.sources import REGISTRY

    gguf_ready = bool(locations) and all(os.fspath(loc) in REGISTRY for loc in locations)
    return "llama.cpp" if gguf_ready and device == "cpu" and _llama_cpp_loads() else "transformers"


def _llama_cpp_loads() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except Exception:  # absent, or its native library fails to load
        return False
    return True


def resolve_location(location: str | os.PathLike, backend: str = "transformers") -> str:
    """A preset name (e.g. "qwen2.5-coder-0.5b") becomes a local path when
    specs_engine.sources knows it; anything else is used as given. Only the files the
    backend opens are hashed: llama.cpp reads the GGUF, the others everything else."""
    location = os.fspath(location)
    if importlib.util.find_spec("specs_engine.sources") is None:
        return location
    from specs_engine import sources

    return os.fspath(sources.resolve(location, reads=files_read_by(backend)))


def files_read_by(backend: str) -> Callable[[str], bool]:
    """Which files of a registry cache entry the backend loads, by name."""
    if backend == "llama.cpp":
        return lambda name: name.endswith(".gguf")
    return lambda name: not name.endswith(".gguf")


def load_language_model(
    location: str | os.PathLike, backend: str = "transformers", dtype: Any = "bfloat16",
    device: str = "cpu", **kwargs: Any,
) -> LanguageModel:
    """The language model at location, loaded once per process for the same arguments."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r} is not allowed: backend must be one of {', '.join(BACKENDS)}")
    # An openai location is a server URL, not a model to resolve.
    resolved = os.fspath(location) if backend == "openai" else resolve_location(location, backend)
    key = ("language", resolved, backend, str(dtype), str(device), cache_key(kwargs))
    with named_load_errors("model", resolved):
        return load_once(key, lambda: importlib.import_module(BACKENDS[backend]).load(
            resolved, dtype=dtype, device=device, **kwargs))


def load_reward_model(spec: Any, dtype: Any = "bfloat16", device: str = "cpu",
                      trust_remote_code: bool = False, allow_pickle: bool = False,
                      backend: str = "transformers", **backend_kwargs: Any) -> RewardModel:
    """A RewardModel from a RewardModel (returned as-is), a callable, or a model location:
    a directory or hub id for backend "transformers" or "vllm", a server base URL for
    "openai" (backend_kwargs: kind="step_token"|"classifier", api_key, timeout_s, ...).
    A location is loaded once per process for the same arguments."""
    from specs_engine.rewards.callable_reward import CallableReward

    if isinstance(spec, RewardModel):
        return spec
    if callable(spec):
        return CallableReward(spec)
    if not isinstance(spec, (str, os.PathLike)):
        raise ConfigError(
            f"reward={spec!r} is not allowed: give a RewardModel, a function (question, steps) -> float, "
            "or a reward model directory"
        )
    backend = REWARD_RUNTIME.get(backend, backend)
    if backend not in REWARD_BACKENDS:
        raise ConfigError(
            f"backend={backend!r} is not allowed for the reward: use {', '.join([*REWARD_BACKENDS, *REWARD_RUNTIME])}"
        )
    location = os.fspath(spec)
    location = location if "://" in location else resolve_location(location)  # URLs are not resolved
    options = dict(dtype=dtype, device=device, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    key = ("reward", location, backend, cache_key({**options, **backend_kwargs}))
    with named_load_errors("reward", location):
        return load_once(key, lambda: _load_reward(backend, location, options, backend_kwargs))


def reward_options(backend: str) -> tuple[str, ...]:
    """The from_pretrained keyword arguments that also go to the reward model."""
    return ("trust_remote_code", "allow_pickle", *SERVING_OPTIONS.get(backend, ()))


def _load_reward(backend: str, location: str, options: dict, backend_kwargs: dict) -> RewardModel:
    """A head directory is our own format, which no server runs: a value head always loads
    in-process (so a preset's reward works with backend="vllm" or "openai" too), and the
    backend's serving options have nothing to configure there. A target probe is two
    small files read without any runtime: it loads no model of its own (it reads the
    target's states; the engine binds it to the target and refuses a backend without them)."""
    from specs_engine.rewards.head_config import head_type  # here: rewards/ imports this module

    kind = head_type(location)
    if kind == "target_probe":
        from specs_engine.rewards.target_probe import TargetProbe

        return TargetProbe.from_directory(location)
    if backend == "transformers" or kind is not None:
        refused = sorted(set(backend_kwargs) - set(SERVING_OPTIONS.get(backend, ())))
        if refused:
            raise ConfigError(
                f"{refused} are not allowed for the in-process transformers reward "
                f"{location!r}; they are options of the vllm and openai reward backends"
            )
        backend, backend_kwargs = "transformers", {}
    return importlib.import_module(REWARD_BACKENDS[backend]).load(location, **options, **backend_kwargs)


def load_once(key: tuple, load: Callable[[], Any]) -> Any:
    """What load() returns, made on the first ask for key and kept for the process. key[0]
    names the role ("language", "reward", or e.g. "engine" for what is built from models).
    One lock for all loads: two threads asking for one key load it once. A key already
    loaded is returned without the lock, so a call whose models are loaded never waits
    (outside its budget, as load time) behind another key's load of minutes."""
    cached = _cache.get(key, _MISSING)  # one dict read: atomic, no lock needed
    if cached is not _MISSING:
        return cached
    with _cache_lock:
        if key not in _cache:
            _cache[key] = load()
            if key[0] in ("language", "reward"):
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


def clear_model_cache(role: str | None = None) -> None:
    """Forget everything loaded, or what one role holds ("language", "reward", "engine"):
    the next load reads from disk again."""
    with _cache_lock:
        for key in [k for k in _cache if role is None or k[0] == role]:
            del _cache[key]


def clear_reward_cache() -> None:
    """Forget every loaded reward model."""
    clear_model_cache("reward")
