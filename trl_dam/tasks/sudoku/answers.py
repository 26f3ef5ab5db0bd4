"""Read a Sudoku answer out of a completion and score it against the solution.

Parsing rule (used by the reward and by the metric):

1. If the completion has an ``<answer>`` tag, read the last ``<answer>...</answer>`` block; otherwise read the
   whole completion (the compact style answers with the bare 16 digits).
2. Keep only the digits of that text. No digit at all means the answer is unparseable (``None``).
3. Pad with ``'0'`` (always wrong) or truncate to 16 characters.

Two scores of the puzzle's empty cells:

* d1's (:func:`score_sudoku_grid`): a filled cell is correct when it holds the digit of the one stored solution, as
  in d1's reward and evaluation. Given cells are not checked.
* validity-aware (:func:`score_sudoku_grid_valid`): a puzzle with several solutions accepts each of them. The count
  is the best agreement with any solution of the puzzle,
  :math:`\\max_{s \\in S} \\#\\{i \\text{ empty} : g_i = s_i\\}`, where :math:`S` is the set of valid grids that keep the puzzle's givens. A completed grid that is a valid Sudoku
  keeping the givens is in :math:`S`, so all its filled cells count as correct. On a puzzle with one solution the
  two scores are equal; the validity-aware one is never lower.
"""

from __future__ import annotations

from functools import lru_cache

from trl_dam.tasks.answer_format import extract_answer_tag
from trl_dam.tasks.sudoku.grid import SUDOKU_CELLS, sudoku_solutions

__all__ = [
    "extract_sudoku_grid",
    "score_sudoku_grid",
    "score_sudoku_grid_valid",
    "sudoku_blank_accuracy",
    "sudoku_grid_solves",
]


def extract_sudoku_grid(text: str) -> str | None:
    """Return the predicted 16-character grid of a completion, or ``None`` if it contains no digit.

    See the module docstring for the rule.
    """
    answer = extract_answer_tag(text)
    source = text if answer is None else answer
    digits = "".join(char for char in source if char.isdigit() and char.isascii())
    if not digits:
        return None
    return digits[:SUDOKU_CELLS].ljust(SUDOKU_CELLS, "0")


def score_sudoku_grid(grid: str | None, puzzle: str, solution: str) -> tuple[int, int]:
    """Count the empty cells of ``puzzle`` that ``grid`` fills with the solution's digit.

    Args:
        grid: Predicted 16-character grid, or ``None`` for an unparseable answer (no cell correct).
        puzzle: 16-character puzzle with ``'0'`` for empty cells.
        solution: 16-character solution.

    Returns:
        ``(correct, total)``: correctly filled empty cells and number of empty cells.
    """
    if len(puzzle) != SUDOKU_CELLS or len(solution) != SUDOKU_CELLS:
        raise ValueError(f"puzzle and solution must have 16 characters, got {puzzle!r} and {solution!r}.")
    blanks = [i for i, char in enumerate(puzzle) if char == "0"]
    if grid is None:
        return 0, len(blanks)
    return sum(grid[i] == solution[i] for i in blanks), len(blanks)


@lru_cache(maxsize=4096)
def _puzzle_solutions(puzzle: str) -> tuple[str, ...]:
    """The solutions of a puzzle, cached: an evaluation scores the same puzzle once per completion and length."""
    return sudoku_solutions(puzzle)


def score_sudoku_grid_valid(grid: str | None, puzzle: str) -> tuple[int, int]:
    """Count the empty cells of ``puzzle`` that ``grid`` fills correctly when any solution of the puzzle is accepted.

    The count is the largest number of empty cells on which ``grid`` agrees with one solution of ``puzzle`` (see
    the module docstring): a grid that is a valid Sudoku and keeps the givens scores every empty cell.

    Args:
        grid: Predicted 16-character grid, or ``None`` for an unparseable answer (no cell correct).
        puzzle: 16-character puzzle with ``'0'`` for empty cells.

    Returns:
        ``(correct, total)``: correctly filled empty cells and number of empty cells.

    Raises:
        ValueError: If ``puzzle`` is not a 16-character grid or has no solution.
    """
    solutions = _puzzle_solutions(puzzle)
    if not solutions:
        raise ValueError(f"The puzzle {puzzle!r} has no solution: its givens repeat a digit in a row, column or box.")
    blanks = [i for i, char in enumerate(puzzle) if char == "0"]
    if grid is None:
        return 0, len(blanks)
    return max(sum(grid[i] == solution[i] for i in blanks) for solution in solutions), len(blanks)


def sudoku_grid_solves(grid: str | None, puzzle: str) -> bool:
    """Whether ``grid`` is a valid Sudoku that keeps the givens of ``puzzle`` (any of its solutions, not only one)."""
    return grid is not None and grid in _puzzle_solutions(puzzle)


def sudoku_blank_accuracy(text: str, puzzle: str, solution: str) -> float:
    """Fraction of the empty cells that a completion fills correctly (``0.0`` if unparseable).

    A puzzle without empty cells scores ``1.0`` when the completion is parseable.
    """
    grid = extract_sudoku_grid(text)
    correct, total = score_sudoku_grid(grid, puzzle, solution)
    if total == 0:
        return float(grid is not None)
    return correct / total
