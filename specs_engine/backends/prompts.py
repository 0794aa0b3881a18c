"""The prompt rule every in-process runtime shares: what chat messages must look like."""

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
