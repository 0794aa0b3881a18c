"""Last-position logits of a frozen classifier over sequences that extend each other.

A search scores step k+1's solutions as step k's plus one step, so re-reading the
question and the earlier steps for every candidate at every step is wasted work. Each
sequence runs alone (batch 1) over the KV of the longest cached prefix it shares, so only
its uncovered tokens are fed. Models whose cache cannot be cut (sliding-window or
recurrent layers) or that take no KV cache run uncached in one right-padded batch.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from specs_engine.call_context import check_deadline
from specs_engine.backends.hf.common import import_torch
from specs_engine.errors import ConfigError

torch = import_torch()

from specs_engine.backends.hf.kv_cache import (  # noqa: E402
    CachedPrefix, PrefixCache, cache_keyword, forward_with_cache, kv_of,
)


class PrefixReuse:
    """last_logits(sequences) -> float32 [sequences, labels]; callers serialise calls."""

    def __init__(self, model: Any, capacity: int = 32):
        self.model = model
        self.fed_tokens = 0
        """Tokens run through the model, cached or not (reuse shows as fewer)."""
        self.cached: Optional[bool] = None if cache_keyword(type(model)) else False
        """None until the first cached call shows whether prefixes can be reused."""
        self._prefixes = PrefixCache(capacity)

    def clear(self) -> None:
        self._prefixes.clear()

    def last_logits(self, sequences: Sequence[Sequence[int]]) -> Any:
        sequences = [tuple(ids) for ids in sequences]
        if any(not ids for ids in sequences):
            raise ConfigError("a reward input encodes to no tokens: nothing to score")
        rows = []
        with torch.inference_mode():
            for ids in sequences:
                check_deadline("reward model")  # in-process rewards stop between sequences
                row = self._extend(ids) if self.cached is not False else None
                if row is None:  # only ever at the first row: the first call decides, once
                    return self._padded(sequences)
                rows.append(row)
            return torch.stack(rows)

    def _extend(self, ids: tuple[int, ...]) -> Optional[Any]:
        """ids' last logits over the longest cached prefix, or None when the model turns
        out not to support reuse (the first call decides)."""
        hit, start, cache = self._prefixes.resume(ids)
        if hit is not None:
            return hit.last_logits
        new = torch.tensor([ids[start:]], device=self.model.device)
        try:
            out = forward_with_cache(self.model, new, cache)
            self.fed_tokens += len(ids) - start
            kv = kv_of(cache)  # the cache object is updated in place; heads may not return it
        except (NotImplementedError, TypeError, ValueError, AttributeError):
            if self.cached:
                raise
            self.cached = False
            return None
        if self.cached is None:  # a model that ignored the cache would leave it short
            self.cached = bool(kv) and kv[0][0].shape[-2] == len(ids)
            if not self.cached:
                return None
        logits = _logits(out)[0]
        logits = (logits[-1] if logits.dim() == 2 else logits).float()
        self._prefixes.put(CachedPrefix(ids, kv, logits))
        return logits

    def _padded(self, sequences: list[tuple[int, ...]]) -> Any:
        """The uncached path: one right-padded batch, or rows alone when there is no pad id
        (sequence-classification heads find each row's end by its pad tokens)."""
        pad = getattr(self.model.config, "pad_token_id", None)
        if pad is None and len(sequences) > 1:
            return torch.cat([self._padded([ids]) for ids in sequences])
        lengths = torch.tensor([len(ids) for ids in sequences], device=self.model.device)
        batch = torch.full((len(sequences), int(lengths.max())), pad or 0, device=self.model.device)
        for row, ids in enumerate(sequences):
            batch[row, : len(ids)] = torch.tensor(ids)
        mask = (torch.arange(batch.shape[1], device=batch.device) < lengths[:, None]).long()
        logits = _logits(self.model(input_ids=batch, attention_mask=mask)).float()
        self.fed_tokens += int(lengths.sum())
        if logits.dim() == 3:  # per-token heads: each row's last real position
            logits = logits[torch.arange(len(sequences), device=logits.device), lengths - 1]
        return logits


def _logits(out: Any) -> Any:
    return out.logits if hasattr(out, "logits") else out[0]
