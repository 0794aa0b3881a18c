"""The files of a reward head directory, read the same way by every head kind.

A head we train is a directory of two files: the head's tensors (HEAD_FILE) and its
config (CONFIG_FILE), whose "type" says which kind reads it ("value_head": backends/hf,
"target_probe": rewards/target_probe.py). The loader dispatches on that type without
importing any runtime, so a probe directory never pulls in torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence

from specs_engine.errors import ConfigError

CONFIG_FILE = "specs_reward.json"
HEAD_FILE = "value_head.safetensors"
HEAD_TYPES = ("value_head", "target_probe")


def head_type(location: str) -> Optional[str]:
    """The "type" a head directory's config declares; None when location holds no config
    (a model directory, a hub id, a server URL). A type no kind reads is refused here,
    naming the known ones."""
    if "://" in location:
        return None
    file = Path(location) / CONFIG_FILE
    if not file.is_file():
        return None
    meta = _parsed(file)
    kind = meta.get("type") if isinstance(meta, dict) else None
    if kind not in HEAD_TYPES:
        raise ConfigError(f"{file}: type={kind!r} is not a reward head this package reads: "
                          f"known types are {', '.join(HEAD_TYPES)}")
    return kind


def read_head_config(path: str | os.PathLike, kind: str, required: Sequence[str]) -> dict[str, Any]:
    """The config of a head of this kind; refuses a directory without one, a config of
    another kind, or one missing a required field, naming the file and the fields."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise ConfigError(f"head_path={os.fspath(path)!r} holds no {CONFIG_FILE}: not a saved {kind} head")
    meta = _parsed(file)
    if not isinstance(meta, dict) or meta.get("type") != kind:
        found = meta.get("type") if isinstance(meta, dict) else type(meta).__name__
        raise ConfigError(f"{file} is not a {kind} config: its type is {found!r}, expected {kind!r}")
    missing = [name for name in required if name not in meta]
    if missing:
        raise ConfigError(
            f"{file} is not a {kind} config: it lacks {', '.join(missing)} "
            f"(needs type={kind!r}, {', '.join(required)})"
        )
    return meta


def _parsed(file: Path) -> Any:
    try:
        return json.loads(file.read_text())
    except ValueError as exc:
        raise ConfigError(f"{file} is not valid JSON ({exc}): not a reward head config") from None
