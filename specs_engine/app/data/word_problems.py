"""Multi-step arithmetic word problems written by this project: training data for verifiers.

Why our own: the GSM-Symbolic template annotations are believed CC BY-NC-ND 4.0, so their
variants may be used for evaluation only. These templates, their wording and their numbers
are ours, so problems drawn from them may be sampled, labelled and trained on freely, and
thousands of fresh instances cost nothing.

Every problem carries its reference solution as steps, each a sentence and the arithmetic
expression it computes (over the problem's numbers and earlier results). The answer is the
last expression's value, evaluated exactly with fractions; tests re-evaluate the
expressions independently. Numbers are drawn so that every intermediate result is a
non-negative integer, as in GSM8K.
"""

from __future__ import annotations

import ast
import operator
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

from specs_engine.app.data.gsm8k import Problem
from specs_engine.errors import ConfigError

NAMES = ("Ada", "Bilal", "Chen", "Dara", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas",
         "Kemal", "Lena", "Mateo", "Nia", "Oskar", "Priya", "Quinn", "Rosa", "Sami", "Tove")
ITEMS = (("notebook", "notebooks"), ("pen", "pens"), ("mug", "mugs"), ("plant", "plants"),
         ("book", "books"), ("candle", "candles"), ("puzzle", "puzzles"), ("towel", "towels"))


@dataclass(frozen=True)
class Step:
    """One reference step: what it says, and the expression whose value it states."""

    name: str
    """The name later expressions use for this step's value."""
    expression: str
    """Arithmetic over the problem's numbers and earlier step names (+ - * / and brackets)."""
    sentence: str
    """The step in words; `{value}` is filled with the expression's value."""


@dataclass(frozen=True)
class Draft:
    """What a template returns: the question, its numbers and the steps that solve it."""

    question: str
    numbers: dict[str, int]
    steps: tuple[Step, ...]


Template = Callable[[random.Random], Draft]


def _shopping(rng: random.Random) -> Draft:
    name = rng.choice(NAMES)
    (one_a, many_a), (one_b, many_b) = rng.sample(ITEMS, 2)
    n = {"a": rng.randint(2, 9), "pa": rng.randint(2, 15), "b": rng.randint(2, 9),
         "pb": rng.randint(2, 15)}
    n["bill"] = 50 * (1 + (n["a"] * n["pa"] + n["b"] * n["pb"]) // 50)
    return Draft(
        f"{name} buys {n['a']} {many_a} at ${n['pa']} each and {n['b']} {many_b} at "
        f"${n['pb']} each, and pays with ${n['bill']}. How much change does {name} get?",
        n,
        (Step("cost_a", "a * pa", f"The {many_a} cost {n['a']} * {n['pa']} = ${{value}}."),
         Step("cost_b", "b * pb", f"The {many_b} cost {n['b']} * {n['pb']} = ${{value}}."),
         Step("total", "cost_a + cost_b", "Altogether that is ${value}."),
         Step("change", "bill - total", f"The change from ${n['bill']} is ${{value}}.")),
    )


def _wages(rng: random.Random) -> Draft:
    name = rng.choice(NAMES)
    n = {"hours": rng.randint(2, 8), "rate": rng.randint(9, 30), "days": rng.randint(3, 6)}
    n["spent"] = rng.randint(1, n["hours"] * n["rate"] * n["days"] - 1)
    return Draft(
        f"{name} works {n['hours']} hours a day for {n['days']} days and earns ${n['rate']} "
        f"an hour. {name} then spends ${n['spent']} on a bicycle. How many dollars does "
        f"{name} have left from the wages?",
        n,
        (Step("daily", "hours * rate", f"Each day {name} earns {n['hours']} * {n['rate']} = ${{value}}."),
         Step("earned", "daily * days", f"Over {n['days']} days that is ${{value}}."),
         Step("left", "earned - spent", f"After spending ${n['spent']}, ${{value}} is left.")),
    )


def _fractions(rng: random.Random) -> Draft:
    name, friend = rng.sample(NAMES, 2)
    k = rng.choice((2, 3, 4, 5))
    n = {"k": k, "total": k * rng.randint(6, 30)}
    n["more"] = rng.randint(1, n["total"] - n["total"] // k - 1)
    return Draft(
        f"{name} has {n['total']} stickers. {name} gives 1/{k} of them to {friend}, then "
        f"gives {n['more']} more to a cousin. How many stickers does {name} keep?",
        n,
        (Step("given", "total / k", f"1/{k} of {n['total']} is {{value}} stickers for {friend}."),
         Step("after", "total - given", "That leaves {value} stickers."),
         Step("kept", "after - more", f"After giving {n['more']} more, {name} keeps {{value}}.")),
    )


def _discount(rng: random.Random) -> Draft:
    name = rng.choice(NAMES)
    one, many = rng.choice(ITEMS)
    n = {"price": 20 * rng.randint(1, 10), "off": rng.choice((10, 15, 20, 25, 30, 40, 50)),
         "count": rng.randint(2, 6)}
    return Draft(
        f"A {one} costs ${n['price']}. During a sale every {one} is {n['off']}% off. "
        f"{name} buys {n['count']} {many} in the sale. How much does {name} pay?",
        n,
        (Step("saving", "price * off / 100", f"{n['off']}% of ${n['price']} is ${{value}}."),
         Step("sale", "price - saving", f"So one {one} costs ${{value}} in the sale."),
         Step("paid", "sale * count", f"{n['count']} {many} cost ${{value}}.")),
    )


def _distance(rng: random.Random) -> Draft:
    name = rng.choice(NAMES)
    n = {"v": rng.randint(30, 90), "t": rng.randint(1, 5), "u": rng.randint(20, 80),
         "s": rng.randint(1, 4)}
    return Draft(
        f"{name} drives at {n['v']} km per hour for {n['t']} hours, then at {n['u']} km per "
        f"hour for {n['s']} more hours. How many kilometres does {name} drive in all?",
        n,
        (Step("first", "v * t", f"The first part is {n['v']} * {n['t']} = {{value}} km."),
         Step("second", "u * s", f"The second part is {n['u']} * {n['s']} = {{value}} km."),
         Step("total", "first + second", "In all that is {value} km.")),
    )


def _ages(rng: random.Random) -> Draft:
    a, b, c = rng.sample(NAMES, 3)
    n = {"c": rng.randint(3, 12), "times": rng.randint(2, 4), "older": rng.randint(2, 15)}
    return Draft(
        f"{c} is {n['c']} years old. {b} is {n['times']} times as old as {c}, and {a} is "
        f"{n['older']} years older than {b}. What is the sum of their three ages?",
        n,
        (Step("b_age", "c * times", f"{b} is {n['c']} * {n['times']} = {{value}} years old."),
         Step("a_age", "b_age + older", f"{a} is {{value}} years old."),
         Step("sum", "c + b_age + a_age", "Together they are {value} years old.")),
    )


def _recipe(rng: random.Random) -> Draft:
    name = rng.choice(NAMES)
    n = {"per_batch": rng.choice((8, 10, 12, 15, 20, 24)), "cups": rng.randint(2, 5),
         "batches": rng.randint(2, 9)}
    n["wanted"] = n["per_batch"] * n["batches"]
    return Draft(
        f"One batch of {name}'s cookie recipe makes {n['per_batch']} cookies and uses "
        f"{n['cups']} cups of flour. {name} wants to bake {n['wanted']} cookies. How many "
        f"cups of flour does {name} need?",
        n,
        (Step("needed", "wanted / per_batch", f"{n['wanted']} / {n['per_batch']} = {{value}} batches."),
         Step("flour", "needed * cups", f"Each uses {n['cups']} cups, so {{value}} cups in all.")),
    )


def _stock(rng: random.Random) -> Draft:
    one, many = rng.choice(ITEMS)
    n = {"sold_mon": rng.randint(5, 40), "delivery": rng.randint(10, 80)}
    n["stock"] = rng.randint(3 * n["sold_mon"] + 1, 3 * n["sold_mon"] + 200)
    return Draft(
        f"A shop has {n['stock']} {many}. It sells {n['sold_mon']} on Monday and twice as "
        f"many on Tuesday. On Wednesday a delivery brings {n['delivery']} more. How many "
        f"{many} does the shop have now?",
        n,
        (Step("sold_tue", "sold_mon * 2", f"On Tuesday it sells {n['sold_mon']} * 2 = {{value}}."),
         Step("sold", "sold_mon + sold_tue", "Over the two days it sells {value}."),
         Step("left", "stock - sold", "That leaves {value}."),
         Step("now", "left + delivery", f"With the delivery of {n['delivery']} it has {{value}}.")),
    )


def _tickets(rng: random.Random) -> Draft:
    name = rng.choice(NAMES)
    n = {"adult": rng.randint(8, 25), "child": rng.randint(3, 12), "adults": rng.randint(1, 4),
         "children": rng.randint(1, 5), "parking": rng.randint(3, 15)}
    return Draft(
        f"Museum tickets cost ${n['adult']} for an adult and ${n['child']} for a child. "
        f"{name} buys tickets for {n['adults']} adults and {n['children']} children and pays "
        f"${n['parking']} for parking. How much does the visit cost?",
        n,
        (Step("adults_cost", "adult * adults", f"Adult tickets cost {n['adults']} * {n['adult']} = ${{value}}."),
         Step("children_cost", "child * children", f"Child tickets cost {n['children']} * {n['child']} = ${{value}}."),
         Step("total", "adults_cost + children_cost + parking", "With parking the visit costs ${value}.")),
    )


def _split_bill(rng: random.Random) -> Draft:
    friends = rng.randint(2, 6)
    n = {"friends": friends, "pizzas": rng.randint(2, 6), "pizza": rng.randint(8, 20)}
    n["tip"] = friends * rng.randint(1, 5) - (n["pizzas"] * n["pizza"]) % friends + friends
    return Draft(
        f"{friends} friends order {n['pizzas']} pizzas at ${n['pizza']} each and leave a "
        f"${n['tip']} tip. They split the bill equally. How much does each friend pay?",
        n,
        (Step("food", "pizzas * pizza", f"The pizzas cost {n['pizzas']} * {n['pizza']} = ${{value}}."),
         Step("bill", "food + tip", "With the tip the bill is ${value}."),
         Step("each", "bill / friends", f"Split {friends} ways, each pays ${{value}}.")),
    )


def _savings(rng: random.Random) -> Draft:
    name = rng.choice(NAMES)
    n = {"weekly": rng.randint(5, 30), "weeks": 3 * rng.randint(2, 8), "gift": rng.randint(10, 60)}
    return Draft(
        f"{name} saves ${n['weekly']} every week for {n['weeks']} weeks and also gets a "
        f"${n['gift']} gift. {name} spends a third of the savings from the weeks on a game. "
        f"How much money does {name} have now?",
        n,
        (Step("saved", "weekly * weeks", f"{n['weeks']} weeks of ${n['weekly']} is ${{value}}."),
         Step("game", "saved / 3", "A third of that, ${value}, goes on the game."),
         Step("now", "saved - game + gift", f"With the ${n['gift']} gift, {name} has ${{value}}.")),
    )


def _garden(rng: random.Random) -> Draft:
    name = rng.choice(NAMES)
    n = {"rows": rng.randint(3, 12), "per_row": rng.randint(4, 20), "eaten": rng.randint(1, 9)}
    n["baskets"] = rng.choice((2, 3, 4))
    total = n["rows"] * n["per_row"] - n["eaten"]
    n["eaten"] += total % n["baskets"]
    return Draft(
        f"{name} plants {n['rows']} rows of {n['per_row']} lettuces. Rabbits eat "
        f"{n['eaten']} of them. {name} shares the rest equally among {n['baskets']} "
        f"baskets. How many lettuces go in each basket?",
        n,
        (Step("planted", "rows * per_row", f"{n['rows']} * {n['per_row']} = {{value}} lettuces."),
         Step("left", "planted - eaten", "After the rabbits, {value} are left."),
         Step("each", "left / baskets", "Each basket gets {value}.")),
    )


TEMPLATES: dict[str, Template] = {
    "shopping": _shopping, "wages": _wages, "fractions": _fractions, "discount": _discount,
    "distance": _distance, "ages": _ages, "recipe": _recipe, "stock": _stock,
    "tickets": _tickets, "split_bill": _split_bill, "savings": _savings, "garden": _garden,
}
"""Template name -> function drawing one problem; the order fixes template numbers."""


def generate_problems(count: int, *, seed: int = 0,
                      templates: tuple[str, ...] | None = None) -> list[Problem]:
    """`count` problems cycling through the templates; the same seed gives the same list."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"count={count!r} is not allowed: count must be an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed={seed!r} is not allowed: seed must be an integer")
    chosen = tuple(TEMPLATES) if templates is None else tuple(templates)
    unknown = [name for name in chosen if name not in TEMPLATES]
    if unknown or not chosen:
        raise ConfigError(f"templates={templates!r} is not allowed: choose from "
                          f"{', '.join(TEMPLATES)}")
    rng = random.Random(seed)
    return [_problem(chosen[k % len(chosen)], k, rng) for k in range(count)]


def _problem(template: str, index: int, rng: random.Random) -> Problem:
    draft = TEMPLATES[template](rng)
    values = solve(draft)
    steps = tuple(step.sentence.format(value=_show(values[step.name])) for step in draft.steps)
    answer = _show(values[draft.steps[-1].name])
    number = list(TEMPLATES).index(template)
    return Problem(f"gen-{template}-{index}", draft.question, answer, steps, number, "train")


def solve(draft: Draft) -> dict[str, Fraction]:
    """Every step's exact value; refuses a draw whose intermediate is not a whole number >= 0
    (a template bug, never a problem silently shipped with a fractional answer)."""
    values: dict[str, Fraction] = {k: Fraction(v) for k, v in draft.numbers.items()}
    for step in draft.steps:
        value = evaluate(step.expression, values)
        if value.denominator != 1 or value < 0:
            raise ValueError(f"step {step.name!r} = {step.expression} gives {value} for "
                             f"{draft.numbers}: templates must give whole numbers >= 0")
        values[step.name] = value
    return values


_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.Div: operator.truediv}


def evaluate(expression: str, names: dict[str, Fraction]) -> Fraction:
    """Exact value of + - * / arithmetic over named numbers (never eval: data stays data)."""
    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return Fraction(node.value)
        if isinstance(node, ast.Name) and node.id in names:
            return names[node.id]
        raise ValueError(f"unsupported expression part {ast.dump(node)} in {expression!r}")
    return walk(ast.parse(expression, mode="eval").body)


def _show(value: Fraction) -> str:
    return str(value.numerator)
