"""Brute-force Countdown solver: every expression that combines all the numbers with ``+ - * /``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction

__all__ = ["countdown_reachable_values", "solve_countdown"]

# (value, expression text, whether the text is a bare number)
_Item = tuple[Fraction, str, bool]


def _wrap(item: _Item) -> str:
    """Expression text of ``item``, parenthesised unless it is a bare number."""
    return item[1] if item[2] else f"({item[1]})"


def _pair_results(a: _Item, b: _Item) -> Iterator[_Item]:
    """Every item obtained by combining ``a`` and ``b`` with one operator (both orders for ``-`` and ``/``)."""
    left, right = _wrap(a), _wrap(b)
    yield a[0] + b[0], f"{left}+{right}", False
    yield a[0] - b[0], f"{left}-{right}", False
    yield b[0] - a[0], f"{right}-{left}", False
    yield a[0] * b[0], f"{left}*{right}", False
    if b[0] != 0:
        yield a[0] / b[0], f"{left}/{right}", False
    if a[0] != 0:
        yield b[0] / a[0], f"{right}/{left}", False


def _expressions(items: list[_Item]) -> Iterator[_Item]:
    """Every expression that uses each item exactly once (all binary trees, all operator choices)."""
    if len(items) == 1:
        yield items[0]
        return
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            rest = items[:i] + items[i + 1 : j] + items[j + 1 :]
            for combined in _pair_results(items[i], items[j]):
                yield from _expressions([*rest, combined])


def countdown_reachable_values(numbers: Sequence[int]) -> dict[Fraction, str]:
    """Map every value reachable with all ``numbers`` (each used once) to one expression reaching it.

    Intermediate results may be negative or fractional, as d1's checker only evaluates the final expression.
    Cost grows quickly with the count of numbers; intended for 3 to 5 numbers.

    Args:
        numbers: The available numbers.

    Returns:
        ``{value: expression}``, with the first expression found for each value.
    """
    if not numbers:
        raise ValueError("numbers must not be empty.")
    reachable: dict[Fraction, str] = {}
    for value, text, _ in _expressions([(Fraction(n), str(n), True) for n in numbers]):
        reachable.setdefault(value, text)
    return reachable


def solve_countdown(numbers: Sequence[int], target: int) -> str | None:
    """Return an expression that uses every number once and equals ``target``, or ``None`` if none exists."""
    target = Fraction(target)
    for value, text, _ in _expressions([(Fraction(n), str(n), True) for n in numbers]):
        if value == target:
            return text
    return None
