"""Final-answer extraction and comparison.

Answers are compared after normalisation so that "24", "24.0", "$24" and "24 dollars"
vote for the same answer: a vote split by formatting would reward verbosity, not
correctness.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Iterable, Optional

_HASHES = re.compile(r"####\s*([^\n]+)")
_NUMBER = re.compile(r"-?\$?\s*\d[\d,]*(?:\.\d+)?|-?\.\d+")


def _boxed_contents(text: str) -> list[str]:
    """Contents of every \\boxed{...}, with nested braces balanced (regexes can't)."""
    found = []
    start = text.find("\\boxed{")
    while start != -1:
        depth, i = 1, start + len("\\boxed{")
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            found.append(text[start + len("\\boxed{") : i - 1])
        start = text.find("\\boxed{", i)
    return found


def has_final_answer(text: str) -> bool:
    """True once a solution states its final answer (\\boxed{} or '#### N')."""
    return bool(_boxed_contents(text)) or bool(_HASHES.search(text))


def extract_answer(text: str) -> Optional[str]:
    """The final answer of a solution: the last \\boxed{}, else '#### N', else the last
    number; normalised. None when the text has no answer at all."""
    boxed = _boxed_contents(text)
    if boxed:
        return normalize_answer(boxed[-1])
    hashes = _HASHES.findall(text)
    if hashes:
        return normalize_answer(hashes[-1])
    numbers = _NUMBER.findall(text)
    return normalize_answer(numbers[-1]) if numbers else None


def normalize_answer(answer: str) -> str:
    """Canonical form: numbers lose '$', ',', units and trailing '.0'; text is stripped."""
    cleaned = answer.strip().replace("\\!", "").replace("\\$", "$")
    cleaned = re.sub(r"\\text\{[^}]*\}", "", cleaned)
    number = _NUMBER.search(cleaned)
    if number and not re.search(r"[a-zA-Z]\s*[=^]|\\frac|/", cleaned):
        value = number.group(0).replace("$", "").replace(",", "").replace(" ", "")
        try:
            as_float = float(value)
        except ValueError:
            return cleaned
        return str(int(as_float)) if as_float == int(as_float) else repr(as_float)
    return cleaned.rstrip(".").strip()


def answers_match(predicted: Optional[str], expected: str) -> bool:
    """True when a predicted answer equals the expected one after normalisation."""
    if predicted is None:
        return False
    a, b = normalize_answer(predicted), normalize_answer(expected)
    if a == b:
        return True
    try:
        return abs(float(a) - float(b)) < 1e-6
    except ValueError:
        return False


def weighted_vote(answers: Iterable[tuple[Optional[str], float]]) -> Optional[str]:
    """The answer with the largest summed weight; answerless entries do not vote."""
    totals: dict[str, float] = defaultdict(float)
    for answer, weight in answers:
        if answer is not None:
            totals[answer] += weight
    return max(totals, key=totals.__getitem__) if totals else None
