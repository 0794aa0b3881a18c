"""A small LRU of prefix KV caches, keyed by token ids, so a search never re-prefills.

Each step of a search extends the previous prefix by one accepted step. Keeping the KV
of recent prefixes (the prompt, the beams, the candidates just proposed or scored) means
the next call only prefills the tokens that are new, and a prefix seen before costs no
prefill at all when its last-position logits were kept too.

Entries hold plain per-layer (keys, values) tensors of batch 1; a DynamicCache is built
from them per call, so cached tensors are never mutated by a forward pass.
"""

from __future__ import annotations

import functools
import inspect
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from specs_engine.backends.prefixes import longest_cached

KV = list[tuple[torch.Tensor, torch.Tensor]]
"""Per-layer (keys, values), each [batch, kv_heads, seq, head_dim]."""


@dataclass
class CachedPrefix:
    """The KV of `ids` and, when known, the logits after its last token."""

    ids: tuple[int, ...]
    kv: KV
    last_logits: Optional[torch.Tensor] = None
    """float32 [vocab]: the next-token logits after ids[-1]."""


class PrefixCache:
    """The last `capacity` prefixes' KV, least recently used dropped first."""

    def __init__(self, capacity: int = 16):
        self.capacity = capacity
        self._entries: OrderedDict[tuple[int, ...], CachedPrefix] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def put(self, entry: CachedPrefix) -> None:
        if self.capacity <= 0:
            return
        self._entries[entry.ids] = entry
        self._entries.move_to_end(entry.ids)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def longest_match(self, ids: Sequence[int]) -> tuple[Optional[CachedPrefix], int]:
        """The entry sharing the most leading tokens with ids, and how many it shares."""
        return longest_cached(self._entries, ids)

    def resume(self, ids: tuple[int, ...], whole: bool = True) -> tuple[Optional[CachedPrefix], int, Any]:
        """How a forward over ids reuses this cache. (entry, len(ids), None) when an entry
        is ids itself with its last logits and `whole` allows taking it as is: nothing
        needs to run. Otherwise (None, start, cache): run ids[start:] over `cache`, a fresh
        DynamicCache of the longest cached prefix; the last token always runs, since its
        outputs are what the caller wants."""
        entry, shared = self.longest_match(ids)
        if whole and entry is not None and shared == len(ids) == len(entry.ids) and entry.last_logits is not None:
            return entry, len(ids), None
        start = min(shared, len(ids) - 1)
        return None, start, to_dynamic_cache(entry.kv if entry is not None else [], start, 1)


def kv_of(cache: Any) -> KV:
    """Per-layer tensors of a DynamicCache; refuses layer kinds a prefix cannot be cut from."""
    from transformers.cache_utils import DynamicLayer

    layers = cache.layers
    if any(type(layer) is not DynamicLayer for layer in layers):
        kinds = sorted({type(layer).__name__ for layer in layers})
        raise NotImplementedError(
            f"prefix caching needs full-attention DynamicLayer caches, got {kinds}; "
            "sliding-window or recurrent layers are not supported by this backend yet"
        )
    return [(layer.keys, layer.values) for layer in layers]


def forward_with_cache(model: Any, input_ids: Any, cache: Any, **kwargs: Any) -> Any:
    """model(input_ids) over a DynamicCache, which the forward extends in place. Passes
    the cache by the keyword this model's forward takes: `cache` since transformers
    deprecated `past_key_values` (removed in 5.40), the old name for older releases."""
    keyword = cache_keyword(type(model)) or "past_key_values"
    return model(input_ids=input_ids, **{keyword: cache}, use_cache=True, **kwargs)


@functools.lru_cache(maxsize=None)
def cache_keyword(model_class: type) -> Optional[str]:
    """The keyword a model class's forward takes its KV cache by, or None when it takes
    none (read once per class: a signature costs more than a decoding step of a tiny model)."""
    try:
        params = inspect.signature(model_class.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return "past_key_values"  # unknown: let the first call decide
    if "cache" in params:
        return "cache"
    if "past_key_values" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return "past_key_values"
    return None


def to_dynamic_cache(kv: KV, length: int, rows: int) -> Any:
    """A fresh DynamicCache holding the first `length` positions of kv, repeated `rows` times."""
    from transformers import DynamicCache

    if length == 0:
        return DynamicCache()
    data = [
        (k[..., :length, :].expand(rows, -1, -1, -1), v[..., :length, :].expand(rows, -1, -1, -1))
        for k, v in kv
    ]
    return DynamicCache(data)  # update() concatenates, so the stored tensors stay untouched


def left_padded_cache(kvs: Sequence[KV], lengths: Sequence[int], repeats: int) -> tuple[Any, Optional[torch.Tensor]]:
    """A DynamicCache of `repeats` rows per prefix: the first lengths[j] positions of kvs[j]
    (batch 1), left-padded to the longest, and the attention mask [rows, longest] that hides
    the padding (None when no row is padded). Left padding puts every row's next token at
    one cache position, so beams of different lengths decode as one batch; the caller places
    each row's tokens by position_ids (the cached keys already carry their own positions)."""
    from transformers import DynamicCache

    width = max(lengths)
    data = []
    for layer in range(len(kvs[0])):
        pair = []
        for which in (0, 1):  # keys, values
            blocks = []
            for kv, m in zip(kvs, lengths):
                own = kv[layer][which][..., :m, :]
                padding = own.new_zeros((*own.shape[:-2], width - m, own.shape[-1]))
                blocks.append(torch.cat([padding, own], dim=-2).expand(repeats, -1, -1, -1))
            pair.append(torch.cat(blocks))
        data.append(tuple(pair))
    if min(lengths) == width:
        return DynamicCache(data), None
    mask = torch.ones(len(kvs) * repeats, width, dtype=torch.long)
    for j, m in enumerate(lengths):
        mask[j * repeats : (j + 1) * repeats, : width - m] = 0
    return DynamicCache(data), mask


def row_kv(kv: KV, row: int, length: Optional[int], copy: bool, start: int = 0) -> KV:
    """One batch row's positions start..length (None: to the end).

    copy=True keeps only that row alive (for rows cut out of a batch that keeps
    growing); copy=False returns views sharing one batch tensor (for a batch whose rows
    are all kept, where copying would only cost time).
    """
    rows = [(k[row : row + 1, :, start:length], v[row : row + 1, :, start:length]) for k, v in kv]
    return [(k.clone(), v.clone()) for k, v in rows] if copy else rows


def ragged_cache(prefix_kv: KV, prefix_length: int, tails: Sequence[KV], lengths: Sequence[int],
                 new: int = 1) -> tuple[Any, torch.Tensor]:
    """A DynamicCache of rows that share a prefix and then hold lengths[j] positions of
    their own (tails[j]: batch-1 KV after the prefix, at least lengths[j] long), right-
    padded to the longest, and the attention mask [rows, prefix + longest + new] that hides
    the padding from `new` new tokens per row (which the caller places by position_ids)."""
    from transformers import DynamicCache

    width, count = max(lengths), len(tails)
    data = []
    for layer, (keys, values) in enumerate(prefix_kv):
        pieces = []
        for shared, own in ((keys, [t[layer][0] for t in tails]), (values, [t[layer][1] for t in tails])):
            padded = shared.new_zeros((count, shared.shape[1], width, shared.shape[3]))
            for j, (tail, m) in enumerate(zip(own, lengths)):
                padded[j, :, :m] = tail[0, :, :m]
            pieces.append(torch.cat([shared[..., :prefix_length, :].expand(count, -1, -1, -1), padded], dim=-2))
        data.append(tuple(pieces))
    mask = torch.ones(count, prefix_length + width + new, dtype=torch.long)
    for j, m in enumerate(lengths):
        mask[j, prefix_length + m : prefix_length + width] = 0
    return DynamicCache(data), mask
