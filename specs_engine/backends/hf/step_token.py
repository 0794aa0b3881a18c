"""StepTokenPRM: a process reward model read at a step-separator token (Qwen2.5-Math-PRM)."""

from __future__ import annotations

import os
import threading
from typing import Any, Optional, Sequence

from specs_engine.call_context import queued
from specs_engine.backends.hf.common import import_torch, import_transformers, load_model, load_tokenizer
from specs_engine.errors import ConfigError
from specs_engine.rewards.formatting import check_solutions
from specs_engine.rewards.prm_layout import QWEN_PRM_SYSTEM, prm_text, step_token_id


class StepTokenPRM:
    """Steps joined by a separator token; the 2-class head at each separator gives P(good).

        >>> prm = StepTokenPRM.from_pretrained("path/to/Qwen2.5-Math-PRM-7B", trust_remote_code=True)
        >>> prm.score("What is 2 + 3?", [["2 + 3 = 5.", "The answer is \\\\boxed{5}."]])

    The layout is Qwen2.5-Math-PRM's: system prompt, the question as the user turn, the
    steps as the assistant turn, each followed by "<extra_0>". The reward of a solution is
    P(class 1) at its last separator, read over the cached KV of the longest prefix it
    shares with recent inputs (see prefix_reuse). Token-classification heads (2 labels)
    load without remote code; Qwen's own PRM class needs trust_remote_code=True, asked for
    by name.
    """

    def __init__(self, model: Any, tokenizer: Any, name: Optional[str] = None,
                 step_token: str = "<extra_0>", system_prompt: str = QWEN_PRM_SYSTEM):
        self.step_token_id = step_token_id(tokenizer, step_token)
        self.model, self.tokenizer = model, tokenizer
        self.step_token, self.system_prompt = step_token, system_prompt
        self.name = name or getattr(model.config, "name_or_path", "") or type(model).__name__
        self._lock = threading.Lock()
        from specs_engine.backends.hf.prefix_reuse import PrefixReuse

        self.reuse = PrefixReuse(model)
        """Reads each solution over the cached KV of the one it extends (the previous step's)."""

    @classmethod
    def from_pretrained(
        cls, location: str | os.PathLike, dtype: Any = "bfloat16", device: str = "cpu",
        trust_remote_code: bool = False, allow_pickle: bool = False, step_token: str = "<extra_0>",
    ) -> StepTokenPRM:
        location = os.fspath(location)
        transformers = import_transformers()
        config = transformers.AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
        token_head = any(a.endswith("ForTokenClassification") for a in config.architectures or [])
        auto = transformers.AutoModelForTokenClassification if token_head else transformers.AutoModel
        model = load_model(auto, location, dtype=dtype, device=device,
                           trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
        tokenizer = load_tokenizer(location, trust_remote_code)
        name = os.path.basename(os.path.normpath(location))
        return cls(model, tokenizer, name=name, step_token=step_token)

    def __repr__(self) -> str:
        return f"StepTokenPRM(name={self.name!r})"

    def text(self, question: str, steps: Sequence[str]) -> str:
        """The PRM's input (prm_layout): every step followed by the separator."""
        return prm_text(self.tokenizer, question, steps, self.step_token, self.system_prompt)

    def score(self, question: str, solutions: Sequence[Sequence[str]]) -> list[float]:
        texts = [self.text(question, steps) for steps in check_solutions(solutions)]
        if not texts:
            return []
        torch = import_torch()
        with queued(self._lock, until_deadline=True), torch.inference_mode():  # the tokenizer and the prefix cache are shared
            ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            logits = self.reuse.last_logits([self._through_last_step(row) for row in ids])
            return logits.softmax(dim=-1)[:, 1].tolist()

    def _through_last_step(self, ids: Sequence[int]) -> list[int]:
        """ids up to the last separator: what follows it (the template's closing tokens)
        cannot change its logits under causal attention, and would differ from the next
        step's ids, spoiling the shared prefix."""
        ids = list(ids)
        if self.step_token_id not in ids:
            raise ConfigError(
                f"the PRM input holds no {self.step_token!r} token: the tokenizer does not keep "
                "the separator whole, so there is no step to read"
            )
        return ids[: len(ids) - ids[::-1].index(self.step_token_id)]
