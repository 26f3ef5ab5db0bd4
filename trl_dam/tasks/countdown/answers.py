r"""Read a Countdown expression out of a completion and check it.

Extraction rule (used by the reward and by the metric):

1. If the completion has an ``<answer>`` tag, read the last ``<answer>...</answer>`` block; if that block holds a
   ``\boxed{...}``, read the last box inside it.
2. Otherwise read the last ``\boxed{...}`` of the completion (d1's evaluation prompt asks for a box).
3. Otherwise read the whole completion (the compact style answers with the bare expression).

The text is then normalised: LaTeX and Unicode operators (``\times``, ``\cdot``, ``\div``, ``×``, ``÷``, ``−``)
become ``* /  -``, ``$``, ``\left``/``\right`` and ``\(``/``\)`` are dropped, and an ``= N`` suffix is cut off.

Check (see :func:`check_countdown_expression`): the expression must parse as integer literals combined with
``+ - * /`` and parentheses, its literals must be exactly the given numbers (each used once, any order), and
its exact value must equal the target.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

from trl_dam.tasks.answer_format import extract_answer_tag
from trl_dam.tasks.boxed import last_boxed_content
from trl_dam.tasks.countdown.arithmetic import (
    InvalidExpressionError,
    arithmetic_literals,
    evaluate_arithmetic,
    parse_arithmetic,
)

__all__ = [
    "COUNTDOWN_STATUSES",
    "check_countdown_expression",
    "countdown_is_correct",
    "extract_countdown_expression",
    "normalize_countdown_expression",
]

COUNTDOWN_STATUSES = ("correct", "wrong_value", "wrong_numbers", "invalid", "missing")
"""Possible results of :func:`check_countdown_expression`."""

_REPLACEMENTS = (
    ("\\times", "*"),
    ("\\cdot", "*"),
    ("\\div", "/"),
    ("\\left", ""),
    ("\\right", ""),
    ("\\(", ""),
    ("\\)", ""),
    ("×", "*"),
    ("·", "*"),
    ("÷", "/"),
    ("−", "-"),
    ("$", ""),
)


def normalize_countdown_expression(expression: str) -> str:
    """Rewrite LaTeX/Unicode operators as ``* / -``, drop math delimiters and cut an ``= N`` suffix."""
    for old, new in _REPLACEMENTS:
        expression = expression.replace(old, new)
    return expression.split("=", 1)[0].strip()


def extract_countdown_expression(text: str) -> str | None:
    """Return the normalised expression of a completion, or ``None`` if there is nothing to read.

    See the module docstring for the rule.
    """
    answer = extract_answer_tag(text)
    if answer is not None:
        boxed = last_boxed_content(answer)
        expression = answer if boxed is None else boxed
    else:
        boxed = last_boxed_content(text)
        expression = text if boxed is None else boxed
    expression = normalize_countdown_expression(expression)
    return expression or None


def check_countdown_expression(expression: str | None, numbers: Sequence[int], target: int) -> str:
    """Classify an extracted expression.

    Args:
        expression: Output of :func:`extract_countdown_expression`.
        numbers: The numbers that must each be used exactly once.
        target: The value to reach.

    Returns:
        ``"missing"`` (no expression), ``"invalid"`` (not an allowed arithmetic expression),
        ``"wrong_numbers"`` (literals are not exactly ``numbers``), ``"wrong_value"`` (right numbers, but the value
        differs from ``target`` or a division by zero occurs) or ``"correct"``.
    """
    if expression is None:
        return "missing"
    try:
        tree = parse_arithmetic(expression)
    except InvalidExpressionError:
        return "invalid"
    if Counter(arithmetic_literals(tree)) != Counter(int(n) for n in numbers):
        return "wrong_numbers"
    try:
        value = evaluate_arithmetic(tree)
    except ZeroDivisionError:
        return "wrong_value"
    return "correct" if value == Fraction(int(target)) else "wrong_value"


def countdown_is_correct(text: str, numbers: Sequence[int], target: int) -> bool:
    """Whether a completion's expression uses every number once and equals the target."""
    return check_countdown_expression(extract_countdown_expression(text), numbers, target) == "correct"
