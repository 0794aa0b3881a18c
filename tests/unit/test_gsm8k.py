"""The GSM8K loader (TOML templates read directly) and the numeric answer checker."""

from __future__ import annotations

import pytest

from specs_engine.app.data import gsm8k
from specs_engine.answers import numeric_value
from specs_engine.app.data.gsm8k import answers_equal, load_problems, parse_solution, split_of
from specs_engine.errors import ConfigError

TEMPLATE = '''question = "Ann has {q} pens and buys 3 more. How many pens does she have?"
answer = """
She starts with {q} pens.
Then {q} + 3 = <<{q}+3={a}>>{a} pens.
#### {a_text}
"""
id_orig = {id}
id_shuffled = {id}
language = "eng"
question_annotated = """
Ann has {{x,{q}}} pens and buys 3 more. How many pens does she have?

#init:
- $x = range(1, 50)

#conditions:
- True

#answer: x + 3
"""
answer_annotated = """
She starts with {{x}} pens.
Then {{x}} + 3 = <<{{x}}+3={{x+3}}>>{{x+3}} pens.
#### {{x+3}}
"""
'''


@pytest.fixture
def template_dir(tmp_path):
    """Twelve tiny templates in the package's TOML layout; one is marked ignore."""
    for i in range(12):
        q = 1000 + i
        text = TEMPLATE.format(q=q, a=q + 3, a_text=f"{q + 3:,}", id=i)
        if i == 11:
            text += "ignore = true\n"
        (tmp_path / f"{i:04d}.toml").write_text(text)
    return tmp_path


def test_original_problems_parse_with_steps_and_answer(template_dir):
    problems = load_problems(directory=template_dir)
    assert len(problems) == 11  # the ignored template is skipped
    first = problems[0]
    assert first.id == "gsm8k-0" and first.template == 0
    assert first.question.startswith("Ann has 1000 pens")
    assert first.answer == "1003"  # "1,003" loses its comma
    assert first.steps == ("She starts with 1000 pens.", "Then 1000 + 3 = 1003 pens.")
    assert first.messages()[0]["role"] == "user" and "\\boxed{}" in first.messages()[0]["content"]


def test_splits_are_disjoint_deterministic_and_cover_everything(template_dir):
    everything = {p.id for p in load_problems(directory=template_dir)}
    by_split = {s: {p.id for p in load_problems(s, directory=template_dir)} for s in gsm8k.SPLITS}
    assert set().union(*by_split.values()) == everything
    assert sum(len(ids) for ids in by_split.values()) == len(everything)
    assert [split_of(t) for t in range(200)] == [split_of(t) for t in range(200)]
    counts = {s: [split_of(t) for t in range(1000)].count(s) for s in gsm8k.SPLITS}
    assert 350 < counts["train"] < 450 and 150 < counts["tune"] < 250 and 350 < counts["test"] < 450


def test_variants_stay_in_their_templates_split(template_dir):
    problems = load_problems("test", variants=2, seed=1, directory=template_dir)
    originals = [p for p in problems if "-v" not in p.id]
    assert len(problems) == 3 * len(originals)
    for p in problems:
        assert p.split == "test" == split_of(p.template)
        x = int(p.question.split()[2])
        assert p.answer == str(x + 3)  # the template's #answer, instantiated
    again = load_problems("test", variants=2, seed=1, directory=template_dir)
    assert [p.question for p in again] == [p.question for p in problems]


def test_limit_and_bad_arguments(template_dir):
    assert len(load_problems(directory=template_dir, limit=3)) == 3
    with pytest.raises(ConfigError, match="split='dev'.*train, tune, test"):
        load_problems("dev", directory=template_dir)
    with pytest.raises(ConfigError, match="limit=0"):
        load_problems(limit=0, directory=template_dir)
    with pytest.raises(ConfigError, match="variants=-1"):
        load_problems(variants=-1, directory=template_dir)
    with pytest.raises(ConfigError, match="not a directory"):
        load_problems(directory=template_dir / "nope")


def test_the_shipped_data_has_100_problems_with_numeric_answers():
    problems = load_problems()
    assert len(problems) == 100
    assert all(numeric_value(p.answer) is not None and p.steps for p in problems)
    assert {p.split for p in problems} == {"train", "tune", "test"}


def test_parse_solution_requires_a_final_line():
    assert parse_solution("2 + 2 = <<2+2=4>>4\n#### 4") == ("4", ("2 + 2 = 4",))
    with pytest.raises(ValueError, match="####"):
        parse_solution("no answer here")


@pytest.mark.parametrize(
    "predicted, reference, expected",
    [
        ("18", "18", True),
        ("18.0", "18", True),
        ("$1,200", "1200", True),
        ("45%", "45", True),
        ("\\frac{3}{4}", "0.75", True),
        ("3/4", "0.75", True),
        ("12 apples", "12", True),
        ("-5", "5", False),
        ("17", "18", False),
        (None, "18", False),
        ("no number", "18", False),
        ("1/0", "0", False),
        ("\\sqrt{18}", "18", False),
        ("2^{18}", "2", False),
        ("(18, 3)", "18", False),
        ("18 \\text{ eggs}", "18", True),
        ("1{,}200", "1200", True),
    ],
)
def test_answers_equal_compares_numbers(predicted, reference, expected):
    assert answers_equal(predicted, reference) is expected


def test_problem_is_correct_uses_the_numeric_check(template_dir):
    problem = load_problems(directory=template_dir)[0]
    assert problem.is_correct("1,003")
    assert not problem.is_correct("1004")
