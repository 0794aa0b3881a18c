"""Our own word-problem generator: exact answers, reproducible, refuses bad arguments."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from specs_engine.app.data.word_problems import TEMPLATES, evaluate, generate_problems, solve
from specs_engine.errors import ConfigError


def independent_value(expression: str, names: dict[str, Fraction]) -> Fraction:
    """A second evaluator (Python's own, on our own template strings) to check the first."""
    return eval(compile(expression, "<template>", "eval"), {"__builtins__": {}}, dict(names))


def test_every_answer_matches_an_independent_evaluation_of_its_steps():
    rng = random.Random(7)
    problems = generate_problems(600, seed=7)
    names = list(TEMPLATES)
    for k, problem in enumerate(problems):
        draft = TEMPLATES[names[k % len(names)]](rng)
        values = {name: Fraction(v) for name, v in draft.numbers.items()}
        for step in draft.steps:
            values[step.name] = independent_value(step.expression, values)
            assert values[step.name].denominator == 1 and values[step.name] >= 0, step
        assert problem.question == draft.question
        assert Fraction(problem.answer) == values[draft.steps[-1].name]
        assert problem.answer in problem.steps[-1]


def test_same_seed_same_problems_other_seed_other_problems():
    assert generate_problems(40, seed=3) == generate_problems(40, seed=3)
    assert [p.question for p in generate_problems(40, seed=3)] != \
        [p.question for p in generate_problems(40, seed=4)]


def test_thousands_of_distinct_problems_from_every_template():
    problems = generate_problems(3000, seed=0)
    assert len({p.question for p in problems}) > 2900
    assert {p.id.split("-")[1] for p in problems} == set(TEMPLATES)
    assert all(p.split == "train" and p.is_correct(p.answer) for p in problems)


def test_templates_can_be_chosen():
    problems = generate_problems(5, seed=1, templates=("ages",))
    assert all(p.id.startswith("gen-ages-") for p in problems)


@pytest.mark.parametrize("kwargs, named", [
    ({"count": 0}, "count=0"), ({"count": -3}, "count=-3"), ({"count": 2.5}, "count=2.5"),
    ({"count": 3, "seed": "1"}, "seed='1'"), ({"count": 3, "seed": 1.0}, "seed=1.0"),
    ({"count": 3, "templates": ("lottery",)}, "templates=('lottery',)"),
    ({"count": 3, "templates": ()}, "templates=()"),
])
def test_bad_arguments_are_named(kwargs, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        generate_problems(**kwargs)


def test_the_evaluator_refuses_anything_but_arithmetic():
    with pytest.raises(ValueError, match="unsupported"):
        evaluate("__import__('os')", {})
    with pytest.raises(ValueError, match="unsupported"):
        evaluate("a ** 2", {"a": Fraction(3)})
    assert evaluate("(a + 1) / 2", {"a": Fraction(3)}) == 2


def test_a_template_giving_a_fraction_is_refused():
    from specs_engine.app.data.word_problems import Draft, Step

    with pytest.raises(ValueError, match="whole numbers"):
        solve(Draft("?", {"a": 3}, (Step("half", "a / 2", "{value}"),)))
