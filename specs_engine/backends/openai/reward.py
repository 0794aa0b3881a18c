"""Reward models behind a vLLM server's pooling API (the reward role of backend="openai").

    OpenAIStepTokenPRM              POST /pooling, task "token_classify": a process reward
                                    model (Qwen2ForProcessRewardModel, or a 2-label
                                    *ForTokenClassification) read at the last step token
    OpenAISequenceClassifierReward  POST /classify: a sequence classifier

Start the server with `--runner pooling` (docs/deployment.md). Both read the same layout
as their in-process twins (StepTokenPRM, SequenceClassifierReward), so one model gives one
score whichever side runs it: the PRM's chat messages come from rewards/prm_layout.py
and are rendered by the server's own chat template (/tokenize); the classifier's text is
format_solution's; the scores are read by rewards/score_rules.py. Plumbing (health check, timeouts, retries on connection errors only,
the key kept out of every message) is client.py's OpenAIServer.
"""

from __future__ import annotations

import asyncio
from typing import Any, Sequence

from specs_engine.call_context import current_deadline
from specs_engine.backends.openai.client import OpenAIServer, field, served_model
from specs_engine.backends.openai.loop import run_sync
from specs_engine.errors import ConfigError, ServerResponseError
from specs_engine.rewards.formatting import check_solutions, format_solution
from specs_engine.rewards.prm_layout import QWEN_PRM_SYSTEM, prm_layout
from specs_engine.rewards.score_rules import classifier_reward, last_step_reward

KINDS = ("step_token", "classifier")


class _OpenAIReward:
    """What both rewards on a server share: one "reward" server, checked at construction."""

    def __init__(self, base_url: str, model: str | None = None, *, api_key: str | None = None,
                 timeout_s: float = 60.0, connect_timeout_s: float = 5.0, retries: int = 2):
        self.server = OpenAIServer(base_url, "reward", api_key=api_key, timeout_s=timeout_s,
                                 connect_timeout_s=connect_timeout_s, retries=retries)
        self.name, self.context_window = served_model(self.server, model)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.name!r}, base_url={self.server.base_url!r})"

    async def _post(self, path: str, payload: dict, deadline: float | None = None) -> Any:
        """deadline: the search call's (current_deadline(), read on the caller's thread:
        the requests run on the background loop, which does not see the call's context)."""
        return await self.server.post_json(path, {"model": self.name, **payload}, deadline)

    def close(self) -> None:
        """Close pooled connections (also done at interpreter exit)."""
        run_sync(self.server.aclose)


class OpenAIStepTokenPRM(_OpenAIReward):
    """A process reward model on a vLLM pooling server; reward = P(good) at the last step token.

        >>> prm = OpenAIStepTokenPRM("http://127.0.0.1:8002")
        >>> prm.score("What is 2 + 3?", [["2 + 3 = 5.", "The answer is \\\\boxed{5}."]])

    One /tokenize per solution (concurrently: the server's chat template decides the ids)
    and one /pooling for all of them. The server may return every token's [P(bad), P(good)]
    (the default) or only the step tokens' rows (`--pooler-config '{"step_tag_id": N}'`);
    any other row count raises ServerResponseError.
    """

    def __init__(self, base_url: str, model: str | None = None, *, step_token: str = "<extra_0>",
                 system_prompt: str = QWEN_PRM_SYSTEM, **server_kwargs: Any):
        super().__init__(base_url, model, **server_kwargs)
        self.step_token, self.system_prompt = step_token, system_prompt
        self.step_token_id = self._step_token_id()
        self.chat = self._has_chat_template()
        """Whether the server renders the PRM layout as chat (the model has a template)."""

    def _step_token_id(self) -> int:
        ids = run_sync(lambda: self._tokenize(self.step_token))
        if len(ids) != 1:
            raise ConfigError(
                f"step_token={self.step_token!r} is not a token of this reward model's tokenizer "
                f"({self.server.where('/tokenize')} splits it into {ids}): give the separator "
                "token it was trained with"
            )
        return ids[0]

    def _has_chat_template(self) -> bool:
        """As in-process: the chat layout when the model has a template, plain text if not
        (vLLM answers HTTP 400 naming the chat template when there is none)."""
        probe = [{"role": "user", "content": "probe"}]
        try:
            run_sync(lambda: self._tokenize(probe))
        except ServerResponseError as exc:
            if "HTTP 400" in str(exc) and "chat template" in str(exc).lower():
                return False
            raise
        return True

    def text(self, question: str, steps: Sequence[str]) -> str | list[dict]:
        """The PRM's input (prm_layout): chat messages for the server's template, or plain text."""
        return prm_layout(question, steps, self.step_token, self.system_prompt, chat=self.chat)

    def score(self, question: str, solutions: Sequence[Sequence[str]]) -> list[float]:
        layouts = [self.text(question, steps) for steps in check_solutions(solutions)]
        if not layouts:
            return []
        deadline = current_deadline()
        return run_sync(lambda: self._score(layouts, deadline))

    async def _score(self, layouts: list[str | list[dict]], deadline: float | None) -> list[float]:
        ids = list(await asyncio.gather(*(self._tokenize(layout, deadline) for layout in layouts)))
        payload = {"input": ids, "task": "token_classify", "use_activation": True}
        answer = await self._post("/pooling", payload, deadline)
        rows = _ordered_data(answer, len(ids), "data", self.server.where("/pooling"))
        return [last_step_reward(r, i, self.step_token_id, self.server.where("/pooling"))
                for r, i in zip(rows, ids)]

    async def _tokenize(self, layout: str | list[dict], deadline: float | None = None) -> list[int]:
        if isinstance(layout, str):
            request: dict = {"prompt": layout, "add_special_tokens": False}
        else:
            request = {"messages": layout, "add_generation_prompt": False, "add_special_tokens": False}
        return await self.server.tokenize({"model": self.name, **request}, deadline)


class OpenAISequenceClassifierReward(_OpenAIReward):
    """A sequence classifier on a vLLM pooling server, scored like SequenceClassifierReward.

        >>> reward = OpenAISequenceClassifierReward("http://127.0.0.1:8002")
        >>> reward.score("What is 2 + 3?", [["2 + 3 = 5."], ["2 + 3 = 6."]])

    One /classify for all solutions, asking for raw logits: one label gives the raw score
    (sigmoid=True squashes it), two give P(label 1), as in-process.
    """

    def __init__(self, base_url: str, model: str | None = None, *, sigmoid: bool = False,
                 **server_kwargs: Any):
        super().__init__(base_url, model, **server_kwargs)
        self.sigmoid = sigmoid

    def score(self, question: str, solutions: Sequence[Sequence[str]]) -> list[float]:
        texts = [format_solution(question, steps) for steps in check_solutions(solutions)]
        if not texts:
            return []
        deadline = current_deadline()
        answer = run_sync(lambda: self._post("/classify", {"input": texts, "use_activation": False}, deadline))
        where = self.server.where("/classify")
        logits = _ordered_data(answer, len(texts), "probs", where)
        return [classifier_reward(row, self.sigmoid, where) for row in logits]


def _ordered_data(answer: Any, count: int, key: str, where: str) -> list[Any]:
    """The `key` field of each answer item, in input order; exactly one per input."""
    items = field(answer, "data", where)
    if not isinstance(items, list) or len(items) != count:
        got = len(items) if isinstance(items, list) else type(items).__name__
        raise ServerResponseError(f"{where} answered {got} items for {count} inputs")
    indices = [item.get("index") if isinstance(item, dict) else None for item in items]
    if not all(isinstance(i, int) for i in indices) or sorted(indices) != list(range(count)):
        raise ServerResponseError(f"{where} answered item indices {indices} for {count} inputs")
    by_index = {item["index"]: item for item in items}
    return [field(by_index[i], key, where) for i in range(count)]


def load(base_url: str, *, kind: str = "step_token", dtype: Any = None, device: Any = None,
         trust_remote_code: bool = False, allow_pickle: bool = False,
         **kwargs: Any) -> OpenAIStepTokenPRM | OpenAISequenceClassifierReward:
    """load_reward_model(url, backend="openai"): kind is "step_token" (a PRM, the default)
    or "classifier"; the server does not say which head it runs, so the caller does.
    kwargs go to the class (model, api_key, timeout_s, retries, ...); weights, dtype,
    device and remote code are the server's business (its command line)."""
    if kind not in KINDS:
        raise ConfigError(f"kind={kind!r} is not allowed: kind must be one of {', '.join(KINDS)}")
    cls = OpenAIStepTokenPRM if kind == "step_token" else OpenAISequenceClassifierReward
    return cls(base_url, **kwargs)


RemoteStepTokenPRM = OpenAIStepTokenPRM
RemoteSequenceClassifierReward = OpenAISequenceClassifierReward
"""The names docs/deployment.md showed before the runtime had one name; kept importable."""
