"""Loading rules shared by every in-process Hugging Face model (language and reward).

One place decides the dtype names, the safetensors-versus-pickle policy and the lazy
imports, so each model class stays about its own role.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from specs_engine.errors import ConfigError, MissingExtraError

DTYPES = ("bfloat16", "float16", "float32", "auto")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def import_torch() -> Any:
    """torch, or an error naming the extra to install."""
    try:
        import torch
    except ImportError as exc:
        raise MissingExtraError("torch", "transformers") from exc
    return torch


def import_transformers() -> Any:
    """transformers (and torch), or an error naming the extra to install."""
    import_torch()
    try:
        import transformers
    except ImportError as exc:
        raise MissingExtraError("transformers", "transformers") from exc
    return transformers


def torch_dtype(dtype: Any) -> Any:
    """A torch dtype (or "auto") from its name; refuses names it does not know."""
    torch = import_torch()
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ConfigError(f"dtype={dtype!r} is not allowed: dtype must be one of {', '.join(DTYPES)}")
    return dtype if dtype == "auto" else getattr(torch, dtype)


def check_weights(location: str, allow_pickle: bool, gguf_file: str | None = None) -> None:
    """Refuse a local directory whose only weights are pickles, unless the caller opted in.

    A pickle runs code when it is loaded, so it is only read from a source the caller
    vouches for. Hub ids are left to transformers (use_safetensors does the same there).
    """
    path = Path(location)
    if gguf_file is not None:
        if path.is_dir() and not (path / gguf_file).is_file():
            raise ConfigError(f"gguf_file={gguf_file!r} is not a file in {location!r}")
        return
    if not path.exists():
        if not HUB_ID.fullmatch(location):
            raise ConfigError(f"location={location!r} does not exist (not a directory nor a hub id)")
        return  # a hub id: transformers resolves it (or fails offline)
    if not path.is_dir():
        raise ConfigError(f"location={location!r} must be a model directory (config.json + weights)")
    names = os.listdir(path)
    has_safetensors = any(name.endswith(".safetensors") for name in names)
    pickles = sorted(name for name in names if name.endswith(PICKLE_SUFFIXES))
    if not has_safetensors and pickles and not allow_pickle:
        raise ConfigError(
            f"{location!r} holds only pickled weights ({', '.join(pickles)}); a pickle can run "
            "code when loaded. Pass allow_pickle=True if you trust its source, or convert it "
            "to safetensors."
        )


def load_tokenizer(location: str, trust_remote_code: bool = False, gguf_file: str | None = None) -> Any:
    """The model's tokenizer; pads on the right (our batches rely on it)."""
    transformers = import_transformers()
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    tokenizer = transformers.AutoTokenizer.from_pretrained(location, **kwargs)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(auto_class: Any, location: str, *, dtype: Any, device: str,
               trust_remote_code: bool = False, allow_pickle: bool = False,
               gguf_file: str | None = None, **kwargs: Any) -> Any:
    """from_pretrained under the safetensors policy, moved to device, in eval mode."""
    check_weights(location, allow_pickle, gguf_file)
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    else:
        kwargs["use_safetensors"] = not allow_pickle or None
    model = auto_class.from_pretrained(
        location, dtype=torch_dtype(dtype), trust_remote_code=trust_remote_code, **kwargs
    )
    return model.to(device).eval()
