"""Safe evaluation of Countdown expressions: integer literals, ``+ - * /`` and parentheses, nothing else.

The text is first checked against a character whitelist (digits, the four operators, parentheses and spaces),
then parsed with :mod:`ast`; only integer constants, the four binary operators and unary ``+``/``-`` are
accepted. Nothing is ever passed to ``eval``. Values are exact :class:`fractions.Fraction`, so ``1/3*3`` is 1.
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "InvalidExpressionError",
    "arithmetic_literals",
    "evaluate_arithmetic",
    "parse_arithmetic",
]

MAX_EXPRESSION_LENGTH = 256
"""Longer expressions are rejected (keeps parsing and recursion cheap)."""

_ALLOWED_CHARS = re.compile(r"[\d+\-*/()\s]+")
_BINARY = (ast.Add, ast.Sub, ast.Mult, ast.Div)
_UNARY = (ast.UAdd, ast.USub)


class InvalidExpressionError(ValueError):
    """The text is not an arithmetic expression over integer literals with ``+ - * /`` and parentheses."""


def _check(node: ast.AST) -> None:
    """Raise :class:`InvalidExpressionError` if ``node`` contains anything but the allowed constructs."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, _BINARY):
        _check(node.left)
        _check(node.right)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY):
        _check(node.operand)
    elif not (isinstance(node, ast.Constant) and type(node.value) is int):
        raise InvalidExpressionError(f"Disallowed syntax: {ast.dump(node)}")


def parse_arithmetic(expression: str) -> ast.expr:
    """Parse and validate an expression.

    Args:
        expression: Text such as ``"(44 + 19) - 35"``.

    Returns:
        The validated expression tree.

    Raises:
        InvalidExpressionError: If the text is too long, has a character other than digits, ``+ - * /``,
            parentheses and whitespace, does not parse, or uses another construct.
    """
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise InvalidExpressionError(f"Expression longer than {MAX_EXPRESSION_LENGTH} characters.")
    if not _ALLOWED_CHARS.fullmatch(expression):
        raise InvalidExpressionError(f"Disallowed characters in {expression!r}.")
    try:
        tree = ast.parse(expression.strip(), mode="eval").body
    except (SyntaxError, RecursionError, MemoryError, ValueError) as error:
        raise InvalidExpressionError(f"Cannot parse {expression!r}: {error}") from None
    _check(tree)
    return tree


def arithmetic_literals(expression: str | ast.expr) -> list[int]:
    """Return the integer literals of an expression, left to right (``"2*4-3"`` gives ``[2, 4, 3]``)."""
    tree = parse_arithmetic(expression) if isinstance(expression, str) else expression
    if isinstance(tree, ast.Constant):
        return [tree.value]
    if isinstance(tree, ast.UnaryOp):
        return arithmetic_literals(tree.operand)
    return arithmetic_literals(tree.left) + arithmetic_literals(tree.right)


def _value(node: ast.expr) -> Fraction:
    """Exact value of a validated tree."""
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp):
        operand = _value(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    left, right = _value(node.left), _value(node.right)
    if isinstance(node.op, ast.Add):
        return left + right
    if isinstance(node.op, ast.Sub):
        return left - right
    if isinstance(node.op, ast.Mult):
        return left * right
    return left / right


def evaluate_arithmetic(expression: str | ast.expr) -> Fraction:
    """Evaluate an expression exactly.

    Args:
        expression: Expression text, or a tree returned by :func:`parse_arithmetic`.

    Returns:
        The exact value.

    Raises:
        InvalidExpressionError: See :func:`parse_arithmetic`.
        ZeroDivisionError: If the expression divides by zero.
    """
    tree = parse_arithmetic(expression) if isinstance(expression, str) else expression
    return _value(tree)
