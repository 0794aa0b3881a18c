"""The input rules every in-process runtime shares: chat messages, token ids, prefixes and
the (prefix, continuation) pairs of a scoring call, refused by name before any model work."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from specs_engine.errors import ConfigError


def check_messages(messages: Any, name: str, has_template: bool) -> list[dict[str, str]]:
    """Chat messages as plain dicts; refuses anything else by name, and refuses messages
    for a model without a chat template (a plain string prompt is then the way)."""
    if not has_template:
        raise ConfigError(f"model {name!r} has no chat template: give the prompt as a plain string")
    ok = isinstance(messages, Sequence) and all(
        isinstance(m, Mapping) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in messages
    )
    if not ok or not messages:
        raise ConfigError(
            f"prompt={messages!r} is not allowed: give a string or a non-empty list of "
            '{"role": str, "content": str} messages'
        )
    return [dict(m) for m in messages]


def check_ids(ids: Sequence[int], name: str, model: Any) -> tuple[int, ...]:
    """ids as a tuple of token ids of model (it has .name and .vocab_size)."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise ConfigError(f"{name}={ids!r} is not allowed: it must be a sequence of token ids")
    bad = [t for t in ids if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < model.vocab_size]
    if bad:
        raise ConfigError(
            f"{name} holds {bad[0]!r}, not a token id of {model.name!r} (ints in [0, {model.vocab_size}))"
        )
    return tuple(ids)


def check_prefix(prefix: Sequence[int], name: str, model: Any) -> tuple[int, ...]:
    """A non-empty prefix that leaves room in model's context window for one more token."""
    ids = check_ids(prefix, name, model)
    if not ids:
        raise ConfigError(f"{name} is empty: a prefix needs at least one token (the prompt)")
    if len(ids) >= model.context_window:
        raise ConfigError(
            f"{name} has {len(ids)} tokens, which fills the context window of "
            f"{model.name!r} ({model.context_window} tokens): shorten the prompt or budget"
        )
    return ids


def group_pairs(prefixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
                model: Any) -> tuple[dict[tuple[int, ...], list[int]], list[tuple[int, ...]]]:
    """A scoring call's pairs, checked: (prefix -> indices of its pairs, continuations).
    Pairs sharing a prefix (all candidates of one beam) are scored together over it."""
    if len(prefixes) != len(continuations):
        raise ConfigError(
            f"score got {len(prefixes)} prefixes and {len(continuations)} continuations: "
            "give one prefix per continuation"
        )
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, prefix in enumerate(prefixes):
        groups.setdefault(check_prefix(prefix, f"prefixes[{i}]", model), []).append(i)
    conts = [check_ids(c, f"continuations[{i}]", model) for i, c in enumerate(continuations)]
    for prefix, members in groups.items():
        longest = max(len(conts[i]) for i in members)
        if len(prefix) + longest > model.context_window:
            raise ConfigError(
                f"prefix ({len(prefix)} tokens) + continuation ({longest} tokens) exceeds the "
                f"context window of {model.name!r} ({model.context_window} tokens)"
            )
    return groups, conts
