"""SequenceClassifierReward: an outcome-style classifier read as a process reward."""

from __future__ import annotations

import os
import threading
from typing import Any, Optional, Sequence

from specs_engine.backends.hf_common import import_torch, import_transformers, load_model, load_tokenizer
from specs_engine.errors import ConfigError
from specs_engine.rewards.formatting import check_solutions, format_solution


class SequenceClassifierReward:
    """Scores each partial solution with an AutoModelForSequenceClassification.

        >>> reward = SequenceClassifierReward.from_pretrained("path/to/classifier")
        >>> reward.score("What is 2 + 3?", [["2 + 3 = 5."], ["2 + 3 = 6."]])

    One label: the raw score (sigmoid=True squashes it to (0, 1)). Two labels: P(label 1),
    label 1 meaning "correct so far". All solutions run in one padded batch.
    """

    def __init__(self, model: Any, tokenizer: Any, name: Optional[str] = None, sigmoid: bool = False):
        labels = model.config.num_labels
        if labels not in (1, 2):
            raise ConfigError(f"num_labels={labels} is not allowed: a reward classifier needs 1 or 2 labels")
        if model.config.pad_token_id is None:  # needed to find each row's last token
            model.config.pad_token_id = tokenizer.pad_token_id
        self.model, self.tokenizer, self.sigmoid = model, tokenizer, sigmoid
        self.name = name or getattr(model.config, "name_or_path", "") or type(model).__name__
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(
        cls, location: str | os.PathLike, dtype: Any = "bfloat16", device: str = "cpu",
        trust_remote_code: bool = False, allow_pickle: bool = False, sigmoid: bool = False,
    ) -> SequenceClassifierReward:
        location = os.fspath(location)
        model = load_model(
            import_transformers().AutoModelForSequenceClassification, location, dtype=dtype,
            device=device, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle,
        )
        tokenizer = load_tokenizer(location, trust_remote_code)
        return cls(model, tokenizer, name=os.path.basename(os.path.normpath(location)), sigmoid=sigmoid)

    def __repr__(self) -> str:
        return f"SequenceClassifierReward(name={self.name!r})"

    def score(self, question: str, solutions: Sequence[Sequence[str]]) -> list[float]:
        texts = [format_solution(question, steps) for steps in check_solutions(solutions)]
        if not texts:
            return []
        torch = import_torch()
        with self._lock, torch.inference_mode():  # padding=True mutates the tokenizer: lock it too
            batch = self.tokenizer(texts, padding=True, return_tensors="pt").to(self.model.device)
            logits = self.model(**batch).logits.float()
        if logits.shape[-1] == 2:
            return logits.softmax(dim=-1)[:, 1].tolist()
        scores = logits[:, 0]
        return (scores.sigmoid() if self.sigmoid else scores).tolist()
