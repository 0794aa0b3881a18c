"""The llama.cpp runtime (backend="llama.cpp"): GGUF files on llama.cpp's CPU kernels,
through llama-cpp-python's low-level bindings. Its language model is LlamaCppLM; the
reward stays on transformers (see rewards/__init__.py).

A location is a .gguf file, or a directory holding exactly one (a preset's cache entry
keeps the verified GGUF beside its bf16 copy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from specs_engine.errors import ConfigError

__all__ = ["LlamaCppLM", "gguf_path", "load"]


def __getattr__(name: str) -> Any:
    """LlamaCppLM imports lazily: naming the backend must not need llama-cpp-python."""
    if name != "LlamaCppLM":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from specs_engine.backends.llamacpp.model import LlamaCppLM

    return LlamaCppLM


def gguf_path(location: str) -> Path:
    """The GGUF file a location names; refuses anything else before llama.cpp starts."""
    path = Path(location).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir():
        found = sorted(path.glob("*.gguf"))
        if len(found) == 1:
            return found[0]
        raise ConfigError(
            f"location={location!r} holds {len(found)} .gguf files "
            f"({', '.join(p.name for p in found) or 'none'}): backend='llama.cpp' needs exactly one "
            f"(or pass the file itself)"
        )
    raise ConfigError(
        f"location={location!r} is not a .gguf file nor a directory holding one: backend='llama.cpp' "
        f"loads GGUF files only (use backend='transformers' for safetensors directories)"
    )


def load(location: str, *, dtype: Any = None, device: str = "cpu", **kwargs: Any) -> Any:
    """The backend entry point used by specs_engine.backends.load_language_model. dtype is
    ignored: a GGUF file carries its own (quantised) tensor types."""
    if device != "cpu":
        raise ConfigError(f"device={device!r} is not allowed for backend='llama.cpp': it runs on 'cpu'")
    path = gguf_path(location)
    from specs_engine.backends.llamacpp.native import import_llama_cpp

    import_llama_cpp()  # a missing llama-cpp-python names its install command here
    from specs_engine.backends.llamacpp.model import LlamaCppLM

    return LlamaCppLM(path, **kwargs)
