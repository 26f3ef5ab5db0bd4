"""Read a Sudoku answer out of a completion and score it against the solution.

Parsing rule (used by the reward and by the metric):

1. If the completion has an ``<answer>`` tag, read the last ``<answer>...</answer>`` block; otherwise read the
   whole completion (the compact style answers with the bare 16 digits).
2. Keep only the digits of that text. No digit at all means the answer is unparseable (``None``).
3. Pad with ``'0'`` (always wrong) or truncate to 16 characters.

Score: the fraction of the puzzle's empty cells whose digit equals the solution's, as in d1's reward and
evaluation. Given cells are not checked.
"""

from __future__ import annotations

from trl_dam.tasks.answer_format import extract_answer_tag
from trl_dam.tasks.sudoku.grid import SUDOKU_CELLS

__all__ = ["extract_sudoku_grid", "score_sudoku_grid", "sudoku_blank_accuracy"]


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


def sudoku_blank_accuracy(text: str, puzzle: str, solution: str) -> float:
    """Fraction of the empty cells that a completion fills correctly (``0.0`` if unparseable).

    A puzzle without empty cells scores ``1.0`` when the completion is parseable.
    """
    grid = extract_sudoku_grid(text)
    correct, total = score_sudoku_grid(grid, puzzle, solution)
    if total == 0:
        return float(grid is not None)
    return correct / total
