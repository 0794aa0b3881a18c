from __future__ import annotations

import pytest

from specs_engine.answers import (
    answers_match, extract_answer, has_final_answer, normalize_answer, weighted_vote,
)


@pytest.mark.parametrize(
    "text, answer",
    [
        ("so \\boxed{24} it is", "24"),
        ("\\boxed{\\frac{1}{2}} and later \\boxed{18}", "18"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("The total is 3 + 4 = 7.\n#### 7", "7"),
        ("#### $1,250.00", "1250"),
        ("she paid 12 then 30 dollars", "30"),
        ("no numbers here", None),
        ("-3.50 degrees", "-3.5"),
    ],
)
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


@pytest.mark.parametrize("a, b", [("24", "24.0"), ("$24", "24"), ("24 dollars", "24"), ("1,000", "1000")])
def test_equivalent_answers_compare_equal(a, b):
    assert normalize_answer(a) == normalize_answer(b)
    assert answers_match(a, b)


@pytest.mark.parametrize("expression", ["\\sqrt{2}", "2\\pi", "2^{10}", "(2, 3)", "3, 5", "x = 2"])
def test_an_expression_is_not_read_as_its_first_number(expression):
    assert normalize_answer(expression) not in ("2", "3")
    assert not answers_match(expression, "2") and not answers_match(expression, "3")


def test_fractions_match_their_value_but_keep_their_form():
    assert normalize_answer("\\frac{1}{2}") == "\\frac{1}{2}"
    assert answers_match("\\frac{1}{2}", "0.5") and answers_match("1/2", "0.5")


def test_different_answers_do_not_match():
    assert not answers_match("24", "25")
    assert not answers_match(None, "25")


def test_final_answer_detection():
    assert has_final_answer("x \\boxed{3}")
    assert has_final_answer("#### 3")
    assert not has_final_answer("the answer is 3")


def test_weighted_vote_sums_weights_per_answer():
    assert weighted_vote([("7", 0.3), ("7", 0.3), ("9", 0.5), (None, 5.0)]) == "7"
    assert weighted_vote([(None, 1.0)]) is None
