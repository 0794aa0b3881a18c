"""Reward models on an in-process vllm.LLM (runner="pooling"): the reward role of backend="vllm".

    >>> prm = load("path/to/Qwen2.5-Math-PRM-7B")        # picks the kind from config.json
    >>> prm.score("What is 2 + 3?", [["2 + 3 = 5."]])

VllmStepTokenPRM runs LLM.encode(pooling_task="token_classify") and reads P(good) at the
last step token; VllmSequenceClassifierReward runs LLM.classify on raw logits. Layouts and
score rules are the runtime-free ones every adapter uses (rewards/prm_layout.py,
format_solution, rewards/score_rules.py), so the
same weights score the same on every backend. vLLM is imported only here, lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from specs_engine.call_context import queued
from specs_engine.backends.reward_kind import SUPPORTED, model_architectures, reward_kind
from specs_engine.backends.vllm.lm import ENGINE_LOCK, import_vllm
from specs_engine.errors import ConfigError
from specs_engine.rewards.formatting import check_solutions, format_solution
from specs_engine.rewards.prm_layout import QWEN_PRM_SYSTEM, prm_text, step_token_id
from specs_engine.rewards.score_rules import classifier_reward, last_step_reward

# In-process vLLM engines share global forward state: two stepping at once (the target's
# verification prefill and the reward, run concurrently by the engine) crash, so every
# engine call here holds the language model's process-wide ENGINE_LOCK.


class _VllmPooling:
    """One vllm.LLM on the pooling runner; pickled weights only when asked for."""

    def __init__(self, location: str, *, dtype: str = "bfloat16", max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.3, trust_remote_code: bool = False,
                 allow_pickle: bool = False, **llm_kwargs: Any):
        vllm = import_vllm()
        self._vllm = vllm
        if not allow_pickle:  # vLLM would fall back to *.bin (pickle) when no safetensors exist
            llm_kwargs.setdefault("load_format", "safetensors")
        self.llm = vllm.LLM(
            model=str(location), runner="pooling", dtype=dtype, max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization, trust_remote_code=trust_remote_code,
            **llm_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.name = Path(location).name or str(location)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class VllmStepTokenPRM(_VllmPooling):
    """A process reward model (Qwen2ForProcessRewardModel or a 2-label token classifier)."""

    def __init__(self, location: str, *, step_token: str = "<extra_0>",
                 system_prompt: str = QWEN_PRM_SYSTEM, **kwargs: Any):
        super().__init__(location, **kwargs)
        self.step_token_id = step_token_id(self.tokenizer, step_token)
        self.step_token, self.system_prompt = step_token, system_prompt

    def text(self, question: str, steps: Sequence[str]) -> str:
        """The PRM's input text (prm_layout), exactly as the transformers StepTokenPRM reads it."""
        return prm_text(self.tokenizer, question, steps, self.step_token, self.system_prompt)

    def score(self, question: str, solutions: Sequence[Sequence[str]]) -> list[float]:
        texts = [self.text(question, steps) for steps in check_solutions(solutions)]
        if not texts:
            return []
        ids = [list(self.tokenizer.encode(t, add_special_tokens=False)) for t in texts]
        params = self._vllm.PoolingParams(use_activation=True)
        with queued(ENGINE_LOCK, until_deadline=True):
            outputs = self.llm.encode([{"prompt_token_ids": i} for i in ids], params,
                                      pooling_task="token_classify", use_tqdm=False)
        where = f"reward model {self.name!r} (vLLM token_classify)"
        return [last_step_reward(o.outputs.data.tolist(), i, self.step_token_id, where)
                for o, i in zip(outputs, ids)]


class VllmSequenceClassifierReward(_VllmPooling):
    """A sequence classifier: raw logits through SequenceClassifierReward's rule."""

    def __init__(self, location: str, *, sigmoid: bool = False, **kwargs: Any):
        super().__init__(location, **kwargs)
        self.sigmoid = sigmoid

    def score(self, question: str, solutions: Sequence[Sequence[str]]) -> list[float]:
        texts = [format_solution(question, steps) for steps in check_solutions(solutions)]
        if not texts:
            return []
        params = self._vllm.PoolingParams(use_activation=False)
        with queued(ENGINE_LOCK, until_deadline=True):
            outputs = self.llm.classify(texts, pooling_params=params, use_tqdm=False)
        where = f"reward model {self.name!r} (vLLM classify)"
        return [classifier_reward(list(o.outputs.probs), self.sigmoid, where) for o in outputs]


def vllm_reward_kind(location: str, trust_remote_code: bool = False) -> str:
    """"classifier" or "step_token", from the model config's architectures (never its name)."""
    architectures = model_architectures(location, trust_remote_code)
    kind = reward_kind(architectures)
    if kind is None:
        raise ConfigError(
            f"reward={location!r} is not a reward model vLLM can serve here: its architectures are "
            f"{architectures}; supported: {SUPPORTED}"
        )
    return kind


def load(location: str, *, dtype: Any = "bfloat16", device: Any = None,
         **kwargs: Any) -> VllmStepTokenPRM | VllmSequenceClassifierReward:
    """load_reward_model(directory, backend="vllm"). kwargs go to the class and on to
    vllm.LLM (max_model_len, gpu_memory_utilization, trust_remote_code, allow_pickle,
    enforce_eager, step_token, sigmoid, ...); device is the vLLM build's business."""
    kind = vllm_reward_kind(location, kwargs.get("trust_remote_code", False))
    cls = VllmSequenceClassifierReward if kind == "classifier" else VllmStepTokenPRM
    return cls(location, dtype=dtype, **kwargs)
