"""The input layout of a step-token process reward model (Qwen2.5-Math-PRM's), written once
for every runtime: the in-process transformers and vLLM adapters render it with their
tokenizer's chat template, the server adapter sends the messages for the server to render.
So one model gives one score whichever runtime reads it."""

from __future__ import annotations

from typing import Any, Sequence

from specs_engine.errors import ConfigError

QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


def prm_layout(question: str, steps: Sequence[str], step_token: str, system_prompt: str,
               chat: bool) -> str | list[dict]:
    """Every step followed by the separator (stray separators removed): as chat messages
    (system prompt, the question as the user turn, the steps as the assistant turn) when
    the model has a chat template, else as plain text after the question."""
    answer = "".join(step.replace(step_token, "").strip() + step_token for step in steps)
    if not chat:
        return f"{question.strip()}\n\n{answer}"
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]


def prm_text(tokenizer: Any, question: str, steps: Sequence[str], step_token: str,
             system_prompt: str) -> str:
    """The layout rendered by a local Hugging Face tokenizer's chat template (if it has one)."""
    layout = prm_layout(question, steps, step_token, system_prompt,
                        chat=getattr(tokenizer, "chat_template", None) is not None)
    if isinstance(layout, str):
        return layout
    return tokenizer.apply_chat_template(layout, tokenize=False, add_generation_prompt=False)


def step_token_id(tokenizer: Any, step_token: str) -> int:
    """The separator's id in a local tokenizer; a separator it does not hold whole is refused."""
    if step_token not in tokenizer.get_vocab():
        raise ConfigError(
            f"step_token={step_token!r} is not a token of this reward model's tokenizer: "
            "give the separator token it was trained with"
        )
    return tokenizer.convert_tokens_to_ids(step_token)
