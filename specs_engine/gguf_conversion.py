"""Turning a verified GGUF into a bf16 safetensors directory that transformers loads.

Why apart from sources.py: resolving and caching a model is about where bytes come from and
whether they can be trusted; this is about one file format becoming another.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

from specs_engine.errors import MissingExtraError, SpecsError


def convert_gguf_to_safetensors(source: Path, gguf_file: str, out: Path) -> None:
    """Dequantise once and save bf16 safetensors + tokenizer + chat template.

    GGUF-loaded models refuse save_pretrained, so the weights move into a model built
    from the same config, which saves normally.
    """
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    except ImportError:
        raise MissingExtraError("transformers", "transformers") from None
    for package in ("gguf", "accelerate"):
        if importlib.util.find_spec(package) is None:
            raise MissingExtraError(package, "offline-models")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
    template = read_gguf_chat_template(source / gguf_file)
    if template and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = template
    # dequantize=True: every weight unpacked to a plain tensor, so the state dict is bf16
    unpack = GgufConfig(gguf_file=gguf_file, dequantize=True)
    loaded = AutoModelForCausalLM.from_pretrained(
        source, gguf_file=gguf_file, dtype=torch.bfloat16, quantization_config=unpack
    )
    save_as_safetensors(loaded, out)
    tokenizer.save_pretrained(out)


def save_as_safetensors(loaded, out: Path) -> None:
    """Copy a loaded model's weights into a fresh model of the same config and save that."""
    from transformers import AutoModelForCausalLM

    dtype = next(loaded.parameters()).dtype
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the copy is plain bf16: loading it must not look for a GGUF
    fresh = AutoModelForCausalLM.from_config(config, dtype=dtype)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    tied = set(getattr(fresh, "_tied_weights_keys", None) or [])
    really_missing = [k for k in missing if k not in tied]
    if really_missing or unexpected:
        raise SpecsError(
            f"converting the GGUF weights failed: missing {really_missing}, unexpected {unexpected}"
        )
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(out, safe_serialization=True)


def read_gguf_chat_template(path: Path) -> str | None:
    """The chat template stored in a GGUF file's metadata, if any."""
    from gguf import GGUFReader

    field_ = GGUFReader(path).fields.get("tokenizer.chat_template")
    if field_ is None:
        return None
    return bytes(field_.parts[field_.data[0]]).decode("utf-8")
