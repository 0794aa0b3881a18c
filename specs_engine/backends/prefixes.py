"""Prefix matching every prefix cache shares (transformers tensors, llama.cpp sequences):
which cached token sequence shares the most leading tokens with a new one. Pure Python,
no runtime imported."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional, Sequence


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading token ids two sequences share.

    Called for every cached entry on every model call, so it compares tuple slices (C
    speed) and bisects on a mismatch, instead of building tensors or looping in Python."""
    a, b = tuple(a), tuple(b)
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    same, differs = 0, n  # a[:same] == b[:same] and a[:differs] != b[:differs]
    while differs - same > 1:
        middle = (same + differs) // 2
        if a[:middle] == b[:middle]:
            same = middle
        else:
            differs = middle
    return same


def longest_cached(entries: OrderedDict[tuple[int, ...], Any], ids: Sequence[int]) -> tuple[Optional[Any], int]:
    """The entry (anything with .ids) sharing the most leading tokens with ids, and how many
    it shares; the chosen entry becomes the most recently used. Ties go to an entry that
    is whole within ids (it may carry the logits after its last token)."""
    best, best_rank = None, (0, False)
    for entry in entries.values():
        shared = common_prefix_length(entry.ids, ids)
        rank = (shared, shared == len(entry.ids))
        if shared and rank > best_rank:
            best, best_rank = entry, rank
    if best is not None:
        entries.move_to_end(best.ids)
    return best, best_rank[0]
