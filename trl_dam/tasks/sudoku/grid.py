"""4x4 Sudoku grids: the 288 complete solutions, a backtracking solver and validity checks.

A grid is a 16-character string read row by row from the top-left cell; ``'0'`` marks an empty cell and the
digits ``'1'``-``'4'`` fill the others. Cell ``i`` is in row ``i // 4``, column ``i % 4`` and 2x2 box
``(i // 8) * 2 + (i % 4) // 2``.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

__all__ = [
    "NUM_SUDOKU_SOLUTIONS",
    "SUDOKU_CELLS",
    "count_sudoku_solutions",
    "enumerate_sudoku_solutions",
    "is_valid_sudoku_solution",
    "solve_sudoku",
    "sudoku_solutions",
]

SUDOKU_CELLS = 16
NUM_SUDOKU_SOLUTIONS = 288


def _unit_of(cell: int) -> tuple[int, int, int]:
    """Return (row, column, box) of a cell index."""
    row, column = divmod(cell, 4)
    return row, column, (row // 2) * 2 + column // 2


_PEERS: tuple[tuple[int, ...], ...] = tuple(
    tuple(
        other
        for other in range(SUDOKU_CELLS)
        if other != cell and any(a == b for a, b in zip(_unit_of(cell), _unit_of(other)))
    )
    for cell in range(SUDOKU_CELLS)
)


def _check_grid(grid: str) -> None:
    """Raise ``ValueError`` unless ``grid`` is 16 characters from ``'0'``-``'4'``."""
    if len(grid) != SUDOKU_CELLS or any(char not in "01234" for char in grid):
        raise ValueError(f"A 4x4 sudoku grid is 16 characters from '0'-'4', got {grid!r}.")


def _givens_consistent(cells: list[int]) -> bool:
    """Whether no two filled cells that share a row, column or box hold the same digit."""
    return all(cells[i] == 0 or all(cells[j] != cells[i] for j in _PEERS[i]) for i in range(SUDOKU_CELLS))


def _search(cells: list[int]) -> Iterator[str]:
    """Yield every completion of ``cells`` (filled in place, restored afterwards) in lexicographic order."""
    try:
        cell = cells.index(0)
    except ValueError:
        yield "".join(map(str, cells))
        return
    used = {cells[peer] for peer in _PEERS[cell]}
    for digit in range(1, 5):
        if digit not in used:
            cells[cell] = digit
            yield from _search(cells)
    cells[cell] = 0


def _solutions(puzzle: str) -> Iterator[str]:
    """Yield the solutions of ``puzzle`` in lexicographic order."""
    _check_grid(puzzle)
    cells = [int(char) for char in puzzle]
    if _givens_consistent(cells):
        yield from _search(cells)


def count_sudoku_solutions(puzzle: str, limit: int | None = None) -> int:
    """Count the solutions of a puzzle, stopping early once ``limit`` is reached.

    Args:
        puzzle: 16-character grid with ``'0'`` for empty cells.
        limit: Stop counting at this many solutions (``2`` is enough to test uniqueness).

    Returns:
        The number of solutions, at most ``limit``.
    """
    count = 0
    for _ in _solutions(puzzle):
        count += 1
        if limit is not None and count >= limit:
            break
    return count


def sudoku_solutions(puzzle: str) -> tuple[str, ...]:
    """Return every solution of ``puzzle``, in lexicographic order (empty if its givens contradict each other)."""
    return tuple(_solutions(puzzle))


def solve_sudoku(puzzle: str) -> str | None:
    """Return the lexicographically first solution of ``puzzle``, or ``None`` if it has none."""
    return next(_solutions(puzzle), None)


@lru_cache(maxsize=1)
def enumerate_sudoku_solutions() -> tuple[str, ...]:
    """Return all 288 complete 4x4 Sudoku grids, sorted lexicographically."""
    solutions = tuple(_solutions("0" * SUDOKU_CELLS))
    assert len(solutions) == NUM_SUDOKU_SOLUTIONS
    return solutions


def is_valid_sudoku_solution(grid: str) -> bool:
    """Whether ``grid`` is a complete grid in which every row, column and 2x2 box holds 1-4 once."""
    if len(grid) != SUDOKU_CELLS or any(char not in "1234" for char in grid):
        return False
    return _givens_consistent([int(char) for char in grid])
