"""An LCEL chain with per-call budgets: the same chain answers once on a tight budget and
once on a loose one, chosen at call time through `config={"configurable": {...}}`.

    python examples/lcel_chain.py                       # the qwen2.5-coder preset
    python examples/lcel_chain.py --models DRAFT TARGET REWARD --scale 0.1
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import PromptTemplate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _models import model_locations, parse  # noqa: E402

from specs_integrations.langchain import SpecsLLM  # noqa: E402

QUESTION = "A shop sells pens at 3 dollars each. Ann buys 4 pens and pays with 20 dollars. " \
           "How much change does she get?"
PROMPT = PromptTemplate.from_template(
    "Solve the problem step by step, separating steps with a blank line, and end with "
    "'The answer is N'.\n\nProblem: {question}\n\nSolution:\n"
)


class LastStats(BaseCallbackHandler):
    """Keeps what the last LLM call reported (answer, budget flag, time split)."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.info = response.generations[0][0].generation_info or {}


def main(argv: Optional[Sequence[str]] = None) -> dict[str, dict[str, Any]]:
    args = parse(__doc__.splitlines()[0], argv)
    llm = SpecsLLM(**model_locations(args), max_steps=8, max_new_tokens=256)
    chain = PROMPT | llm | StrOutputParser()
    budgets = {"tight": {"latency_budget_s": 4.0 * args.scale, "n": 2, "beam_width": 2},
               "loose": {"latency_budget_s": 30.0 * args.scale, "n": 4, "beam_width": 2}}
    report = {}
    for name, budget in budgets.items():
        stats = LastStats()
        text = chain.invoke({"question": QUESTION},
                            config={"configurable": budget, "callbacks": [stats]})
        report[name] = {"text": text, **{k: stats.info.get(k) for k in (
            "answer", "budget_exhausted", "wall_s", "draft_s", "target_s", "reward_s",
            "steps_from_draft", "steps_from_target")}}
        print(f"--- {name} budget {budget}\n{text}\n{report[name]}\n")
    print("--- streamed, one chunk per accepted step:")
    for chunk in chain.stream({"question": QUESTION},
                              config={"configurable": budgets["tight"]}):
        print(repr(chunk))
    return report


if __name__ == "__main__":
    main()
