"""Completions of the pre-training corpus: correct solutions mixed with those of an imperfect teacher.

Reward fine-tuning sharpens what the base model already puts probability on; it does not teach new skills. The
demo's base is therefore pre-trained on a corpus in which only part of the answers are correct, so that the right
answer is in its distribution without being its mode. Corruptions:

* ``"row_heuristic"``: the answer of a sloppy solver that fills each row's empty cells with the digits missing from
  that row, in increasing order. Rows are valid, columns and boxes are ignored; on 8-blank puzzles it fills about 49%
  of the empty cells correctly and solves about 3% of the puzzles. Being deterministic, it is the base's mode when it
  is more frequent than the correct answer, so greedy decoding of the base inherits its mistakes.
* ``"random"``: every empty cell gets a uniformly random digit (the prototype of the spec). Random noise lowers the
  accuracy of *sampling* from the base but not of greedy decoding, which averages the noise away.
"""

from __future__ import annotations

import random

__all__ = ["CORRUPTIONS", "random_fill", "row_heuristic_fill", "teacher_answer"]

CORRUPTIONS = ("row_heuristic", "random", "none")


def row_heuristic_fill(puzzle: str) -> str:
    """Fill each row's empty cells with the digits missing from that row, in increasing order (columns ignored)."""
    cells = list(puzzle)
    for row in range(4):
        values = puzzle[4 * row : 4 * row + 4]
        missing = iter(sorted(set("1234") - set(values)))
        for column in range(4):
            if values[column] == "0":
                cells[4 * row + column] = next(missing, "1")
    return "".join(cells)


def random_fill(puzzle: str, rng: random.Random) -> str:
    """Fill every empty cell with a uniformly random digit 1-4."""
    return "".join(rng.choice("1234") if char == "0" else char for char in puzzle)


def teacher_answer(puzzle: str, solution: str, corruption: str, corrupt_prob: float, rng: random.Random) -> str:
    """One answer of the pre-training corpus: ``solution``, or with probability ``corrupt_prob`` a corrupted one.

    Args:
        puzzle: 16-character puzzle (``'0'`` for empty cells).
        solution: its solution.
        corruption: one of :data:`CORRUPTIONS`.
        corrupt_prob: probability of a corrupted answer.
        rng: random number generator.
    """
    if corruption not in CORRUPTIONS:
        raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {corruption!r}.")
    if corruption == "none" or rng.random() >= corrupt_prob:
        return solution
    return row_heuristic_fill(puzzle) if corruption == "row_heuristic" else random_fill(puzzle, rng)
