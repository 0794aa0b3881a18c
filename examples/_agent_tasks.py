"""The two tools and the handful of tasks both agent examples run (shared, so their
figures are comparable): a calculator and a price table.

The calculator reads arithmetic with Python's ast and evaluates only numbers and + - * /
and parentheses: a model's output is data, never code to run.
"""

from __future__ import annotations

import ast
import operator
import re
from typing import Any, Optional

STEP_BUDGET_S = 60.0
"""Seconds per agent step (one model call) on the default preset, times --scale. At 30 s
a loaded 2-core CPU cut the preset's first call mid-JSON (the target writes ~25 tokens
after a ~350-token tool prompt)."""
PRICES = {"apple": 0.5, "pen": 3.0, "notebook": 4.0, "tea": 2.0, "bus ticket": 2.5}
TASKS = [
    ("What is 37 times 23?", 851.0),
    ("How much does a notebook cost, in dollars?", 4.0),
    ("How much do 7 pens cost in total, in dollars?", 21.0),
    ("What is (120 - 45) / 5?", 15.0),
]
SYSTEM = ("You are a careful assistant. Use the calculator tool for arithmetic and the "
          "price_lookup tool for prices; never guess a number. When you have the result, "
          "answer in one sentence that ends with the number.")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.USub: operator.neg, ast.UAdd: operator.pos}


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression with numbers, + - * / and parentheses."""
    try:
        return _format(_eval(ast.parse(expression, mode="eval").body))
    except (SyntaxError, ValueError, ZeroDivisionError) as exc:
        return f"error: {exc}"


def price_lookup(item: str) -> str:
    """Price in dollars of one item from the shop's price table."""
    price = PRICES.get(item.strip().lower().rstrip("s"))
    return "unknown item; known: " + ", ".join(PRICES) if price is None else _format(price)


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.left), _eval(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.operand))
    raise ValueError("only numbers, + - * / and parentheses are allowed")


def _format(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def is_right(answer: str, expected: float) -> bool:
    """Whether the answer's last number is the expected one."""
    numbers = re.findall(r"-?\d+(?:\.\d+)?", answer.replace(",", ""))
    return bool(numbers) and abs(float(numbers[-1]) - expected) < 1e-6


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures the README quotes: right answers, calls that parsed, time."""
    return {
        "tasks": len(rows),
        "right": sum(r["right"] for r in rows),
        "tool_calls_parsed": sum(r["tool_calls"] for r in rows),
        "tool_calls_invalid": sum(r["invalid_tool_calls"] for r in rows),
        "candidates_rejected_structure": sum(r["rejected_structure"] for r in rows),
        "wall_s": round(sum(r["wall_s"] for r in rows), 2),
    }


def print_report(rows: list[dict[str, Any]], title: Optional[str] = None) -> dict[str, Any]:
    for row in rows:
        print(f"--- {row['question']}\n    calls: {row['calls']}\n    answer: {row['answer']!r}"
              f"\n    right: {row['right']}  wall: {row['wall_s']:.2f}s")
    totals = summary(rows)
    print(f"=== {title or 'summary'}: {totals}")
    return totals
