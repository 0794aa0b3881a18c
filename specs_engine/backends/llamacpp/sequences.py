"""Which llama.cpp sequence holds which prefix: the llama.cpp form of the prefix cache.

In transformers a cached prefix is a tensor; here it is a sequence id in the context's
one KV pool, plus the logits after its last token. A new sequence starts as a copy of a
cached one (llama_memory_seq_cp: the cells gain an id, no data moves), so the prompt's
KV is computed once and shared by every beam and candidate that extends it. Sequence
ids are few (n_seq_max), so cached prefixes are dropped least recently used first when a
new sequence or new cells are needed; dropping one frees only the cells no other
sequence still holds.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from specs_engine.backends.prefixes import longest_cached
from specs_engine.backends.llamacpp.native import Native
from specs_engine.errors import SpecsError


@dataclass
class CachedSequence:
    """Sequence `seq` holds the KV of `ids`; `last_logits` are the logits after ids[-1]."""

    ids: tuple[int, ...]
    seq: int
    last_logits: np.ndarray


class SequencePool:
    """The context's sequence ids: the last `capacity` prefixes kept, the rest free."""

    def __init__(self, native: Native, capacity: int):
        self.native = native
        self.capacity = capacity
        self._free = list(range(native.n_seq_max - 1, -1, -1))
        self._entries: OrderedDict[tuple[int, ...], CachedSequence] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def acquire(self, count: int) -> list[int]:
        """count empty sequence ids, dropping cached prefixes (oldest first) if needed."""
        while len(self._free) < count and self.evict_oldest():
            pass
        if len(self._free) < count:
            raise SpecsError(
                f"llama.cpp context has {self.native.n_seq_max} sequences, {count} are needed at "
                f"once: load the model with a larger n_seq_max"
            )
        return [self._free.pop() for _ in range(count)]

    def release(self, seq: int) -> None:
        """Free a sequence that is not cached (its cells go unless another holds them)."""
        self.native.drop_sequence(seq)
        self._free.append(seq)

    def evict_oldest(self) -> bool:
        """Drop the least recently used prefix; False when none is cached."""
        if not self._entries:
            return False
        _, entry = self._entries.popitem(last=False)
        self.release(entry.seq)
        return True

    def put(self, entry: CachedSequence) -> None:
        """Cache entry (its sequence now belongs to the pool), most recently used."""
        old = self._entries.pop(entry.ids, None)
        if old is not None and old.seq != entry.seq:
            self.release(old.seq)
        if self.capacity <= 0:
            self.release(entry.seq)
            return
        self._entries[entry.ids] = entry
        while len(self._entries) > self.capacity:
            self.evict_oldest()

    def take(self, entry: CachedSequence) -> CachedSequence:
        """Check entry out of the cache while a call reads it, so no eviction frees its
        cells meanwhile; the call puts it back when done."""
        if self._entries.get(entry.ids) is entry:
            del self._entries[entry.ids]
        return entry

    def longest_match(self, ids: Sequence[int]) -> tuple[Optional[CachedSequence], int]:
        """The entry sharing the most leading tokens with ids, and how many it shares."""
        return longest_cached(self._entries, ids)

    def clear(self) -> None:
        while self.evict_oldest():
            pass

    def reset(self) -> None:
        """Forget every sequence and empty the KV pool: after a failed call, when the
        sequences it held cannot be told apart from the cached ones."""
        self.native.clear_memory()
        self._entries.clear()
        self._free = list(range(self.native.n_seq_max - 1, -1, -1))
