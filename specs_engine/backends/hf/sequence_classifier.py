"""SequenceClassifierReward: an outcome-style classifier read as a process reward."""

from __future__ import annotations

import os
import threading
from typing import Any, Optional, Sequence

from specs_engine.call_context import queued
from specs_engine.backends.hf.common import import_torch, import_transformers, load_model, load_tokenizer
from specs_engine.errors import ConfigError
from specs_engine.rewards.formatting import check_solutions, format_solution


class SequenceClassifierReward:
    """Scores each partial solution with an AutoModelForSequenceClassification.

        >>> reward = SequenceClassifierReward.from_pretrained("path/to/classifier")
        >>> reward.score("What is 2 + 3?", [["2 + 3 = 5."], ["2 + 3 = 6."]])

    One label: the raw score (sigmoid=True squashes it to (0, 1)). Two labels: P(label 1),
    label 1 meaning "correct so far". Each solution runs over the cached KV of the longest
    prefix it shares with recent inputs (see prefix_reuse): a search step reads only the
    new step's tokens.
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
        from specs_engine.backends.hf.prefix_reuse import PrefixReuse

        self.reuse = PrefixReuse(model)
        """Reads each solution over the cached KV of the one it extends (the previous step's)."""

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
        with queued(self._lock, until_deadline=True), torch.inference_mode():  # the tokenizer and the prefix cache are shared
            ids = self.tokenizer(texts)["input_ids"]  # default special tokens, as always
            logits = self.reuse.last_logits([self._through_last_real_token(row) for row in ids])
        if logits.shape[-1] == 2:
            return logits.softmax(dim=-1)[:, 1].tolist()
        scores = logits[:, 0]
        return (scores.sigmoid() if self.sigmoid else scores).tolist()

    def _through_last_real_token(self, ids: Sequence[int]) -> list[int]:
        """ids up to the last token that is not the pad id: the head pools there (a trailing
        EOS equal to the pad id is skipped, as in a padded batch)."""
        ids, pad = list(ids), self.model.config.pad_token_id
        real = [i for i, token in enumerate(ids) if token != pad]
        return ids[: real[-1] + 1 if real else 1]
