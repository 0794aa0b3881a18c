"""Final-answer extraction and comparison.

Answers are compared after normalisation so that "24", "24.0", "$24" and "24 dollars"
vote for the same answer: a vote split by formatting would reward verbosity, not
correctness.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from fractions import Fraction
from typing import Iterable, Optional

_HASHES = re.compile(r"####\s*([^\n]+)")
_NUMBER = re.compile(r"-?\$?\s*\d[\d,]*(?:\.\d+)?|-?\.\d+")
_PLAIN = re.compile(r"(-?\$?\s*(?:\d[\d,]*(?:\.\d+)?|\.\d+))\s*(?:%|[a-zA-Z][a-zA-Z .]*)?\.?")
"""A whole answer that is one number, with optional $, thousands commas, % or unit words."""
_LATEX_FRAC = re.compile(r"\\d?frac\{\s*(-?[\d.]+)\s*\}\{\s*(-?[\d.]+)\s*\}")
_FRACTION = re.compile(r"\$?\s*(-?\d+(?:\.\d+)?)\s*/\s*(-?\d+(?:\.\d+)?)")


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
    """Canonical form: a plain number loses '$', ',', units and trailing '.0'; anything
    else ('\\frac{1}{2}', '\\sqrt{2}', '(2, 3)', 'x = 5') is only stripped."""
    cleaned = _clean(answer)
    value = _plain_number(cleaned)
    if value is None:
        return cleaned.rstrip(".").strip()
    return str(int(value)) if value == int(value) else repr(value)


def numeric_value(answer: Optional[str]) -> Optional[float]:
    """The number a final answer states: '$1,200', '45%', '12 apples', '\\frac{3}{4}' and
    '3/4' do; '\\sqrt{2}', '2^{10}', '(2, 3)' and 'x = 5' do not (None), so an expression
    is never mistaken for its first digit."""
    if answer is None:
        return None
    cleaned = _LATEX_FRAC.sub(r"\1/\2", _clean(answer))
    fraction = _FRACTION.fullmatch(cleaned)
    if fraction:
        try:
            return float(Fraction(fraction.group(1)) / Fraction(fraction.group(2)))
        except ZeroDivisionError:
            return None
    return _plain_number(cleaned)


def _plain_number(cleaned: str) -> Optional[float]:
    """The value of a cleaned answer that is one number (see _PLAIN), else None."""
    number = _PLAIN.fullmatch(cleaned)
    return None if number is None else float(number.group(1).replace("$", "").replace(",", "").replace(" ", ""))


def _clean(answer: str) -> str:
    cleaned = answer.strip().replace("\\!", "").replace("{,}", ",").replace("\\$", "$").replace("\\%", "%")
    return re.sub(r"\\text\{([^}]*)\}", r"\1", cleaned).strip()


def answers_match(predicted: Optional[str], expected: str) -> bool:
    """True when a predicted answer equals the expected one: as numbers when both are
    numbers, else as normalised text."""
    if predicted is None:
        return False
    a, b = numeric_value(predicted), numeric_value(expected)
    if a is not None and b is not None:
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return normalize_answer(predicted) == normalize_answer(expected)


def weighted_vote(answers: Iterable[tuple[Optional[str], float]]) -> Optional[str]:
    """The answer with the largest summed weight; answerless entries do not vote."""
    totals: dict[str, float] = defaultdict(float)
    for answer, weight in answers:
        if answer is not None:
            totals[answer] += weight
    return max(totals, key=totals.__getitem__) if totals else None
