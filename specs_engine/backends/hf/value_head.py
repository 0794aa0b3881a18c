"""ValueHeadPRM: a small head on a frozen causal LM's hidden state, trained by us.

No reward model ships on these machines, so we train one: the frozen draft's hidden
state at the end of a partial solution goes through a linear (or one-hidden-layer MLP)
head and a sigmoid. Sharing the draft's weights costs no extra memory: the base is
loaded through the process-wide model cache.

On disk a head is a directory with two files (scripts/train_reward.py writes the same):
    value_head.safetensors   the head's tensors ("weight" [1, H] and "bias" [1] when linear)
    specs_reward.json        {"type": "value_head", "base_model": <location>, "hidden_size": H,
                              optional "inner_size": N (an MLP head), "layer": -1, ...}
The base location may be a directory (relative paths are taken from the head's directory),
a registry name or a hub id.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Optional, Sequence

from specs_engine.call_context import queued
from specs_engine.backends.hf.common import import_torch
from specs_engine.errors import ConfigError
from specs_engine.rewards.formatting import check_solutions, format_solution
from specs_engine.rewards.head_config import CONFIG_FILE, HEAD_FILE, read_head_config

HEAD_TYPE = "value_head"

torch = import_torch()


def value_head(hidden_size: int, inner_size: int = 0) -> torch.nn.Module:
    """hidden state [.., H] -> one logit [.., 1]: linear when inner_size is 0 (tensors
    "weight", "bias"), else a one-hidden-layer GELU MLP."""
    if not inner_size:
        return torch.nn.Linear(hidden_size, 1)
    return torch.nn.Sequential(
        torch.nn.Linear(hidden_size, inner_size), torch.nn.GELU(), torch.nn.Linear(inner_size, 1)
    )


def _sizes(head: torch.nn.Module) -> tuple[int, int]:
    """(hidden_size, inner_size) of a head built by value_head()."""
    first = head if isinstance(head, torch.nn.Linear) else head[0]
    inner = 0 if isinstance(head, torch.nn.Linear) else first.out_features
    return first.in_features, inner


class ValueHeadPRM:
    """Reward = sigmoid(head(hidden state of the base LM at the solution's last token)).

        >>> prm = ValueHeadPRM("path/to/draft", "path/to/head_dir")
        >>> prm.score("What is 2 + 3?", [["2 + 3 = 5."]])

    To train one: `prm = ValueHeadPRM.untrained("path/to/draft")`, fit `prm.head` on
    `prm.features(question, solutions)` against 0/1 labels, then `prm.save_head(dir)`.
    """

    def __init__(self, base: Any, head_path: Optional[str | os.PathLike] = None, *,
                 head: Optional[torch.nn.Module] = None, layer: int = -1, name: Optional[str] = None,
                 dtype: Any = "bfloat16", device: str = "cpu"):
        if (head is None) == (head_path is None):
            raise ConfigError("ValueHeadPRM needs exactly one of head_path= (a saved head) or head= (a module)")
        self.base_location = base if isinstance(base, (str, os.PathLike)) else getattr(base, "name", None)
        self.lm = _base_model(base, dtype, device)
        if head_path is not None:
            head, layer = load_head(head_path)
        self.head, self.layer = head.to(self.lm.device).float().eval(), layer
        self._check_size()
        self.name = name or f"value-head({self.lm.name})"
        self._lock = threading.Lock()

    @classmethod
    def untrained(cls, base: Any, inner_size: int = 0, layer: int = -1, **kwargs: Any) -> ValueHeadPRM:
        """A fresh head sized for base, for a trainer to fit."""
        lm = _base_model(base, kwargs.pop("dtype", "bfloat16"), kwargs.pop("device", "cpu"))
        hidden = lm.model.config.get_text_config().hidden_size
        prm = cls(lm, head=value_head(hidden, inner_size), layer=layer, **kwargs)
        prm.base_location = base if isinstance(base, (str, os.PathLike)) else prm.base_location
        return prm

    @classmethod
    def from_directory(cls, path: str | os.PathLike, dtype: Any = "bfloat16", device: str = "cpu") -> ValueHeadPRM:
        """Load a saved head and the base model its config names."""
        base = read_config(path)["base_model"]
        beside = Path(path) / base
        return cls(str(beside) if beside.exists() else base, path, dtype=dtype, device=device)

    def __repr__(self) -> str:
        return f"ValueHeadPRM(name={self.name!r})"

    def _check_size(self) -> None:
        hidden = self.lm.model.config.get_text_config().hidden_size
        expected, _ = _sizes(self.head)
        if expected != hidden:
            raise ConfigError(
                f"the value head expects hidden_size={expected} but base model "
                f"{self.lm.name!r} has hidden_size={hidden}: load the head with the base it was trained on"
            )

    def features(self, question: str, solutions: Sequence[Sequence[str]]) -> torch.Tensor:
        """float32 [solutions, hidden]: the base's hidden state at each solution's last token.
        Through the base's prefix cache: step k's solutions extend step k-1's, so only the
        new step's tokens run (the question and earlier steps are not re-read each step)."""
        texts = [format_solution(question, steps) for steps in check_solutions(solutions)]
        return self.lm.last_hidden_states([self.lm.encode(text) for text in texts], self.layer)

    def score(self, question: str, solutions: Sequence[Sequence[str]]) -> list[float]:
        if not solutions:
            return []
        features = self.features(question, solutions)
        with queued(self._lock, until_deadline=True), torch.inference_mode():
            return torch.sigmoid(self.head(features).squeeze(-1)).tolist()

    def save_head(self, path: str | os.PathLike, base: Optional[str] = None) -> Path:
        """Write the head and its config (naming the base model) into directory path."""
        from safetensors.torch import save_file

        base = base or (os.fspath(self.base_location) if self.base_location is not None else None)
        if base is None:
            raise ConfigError("save_head needs base= (the base model's location) for this head")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        save_file(tensors, str(path / HEAD_FILE))
        hidden, inner = _sizes(self.head)
        meta = {"type": HEAD_TYPE, "base_model": base, "hidden_size": hidden,
                "inner_size": inner, "layer": self.layer}
        (path / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        return path


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The head's config; refuses a directory that does not hold one."""
    return read_head_config(path, HEAD_TYPE, ("base_model", "hidden_size"))


def load_head(path: str | os.PathLike) -> tuple[torch.nn.Module, int]:
    """The head module (safetensors only: no pickles) and the layer it reads."""
    from safetensors.torch import load_file

    meta = read_config(path)
    head = value_head(int(meta["hidden_size"]), int(meta.get("inner_size", 0)))
    head.load_state_dict(load_file(str(Path(path) / HEAD_FILE)))
    return head, int(meta.get("layer", -1))


def _base_model(base: Any, dtype: Any, device: str) -> Any:
    """The base as a TransformersLM, loaded through the shared cache when given a location."""
    if isinstance(base, (str, os.PathLike)):
        from specs_engine.backends import load_language_model

        return load_language_model(base, backend="transformers", dtype=dtype, device=device)
    if not (hasattr(base, "model") and hasattr(base, "tokenizer") and hasattr(base, "lock")):
        raise ConfigError(f"base={base!r} is not allowed: give a model location or a TransformersLM")
    return base
