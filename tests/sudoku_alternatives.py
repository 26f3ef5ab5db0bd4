"""4x4 Sudoku puzzles with more than one solution (as d1's test file has), built here, and an enumeration of their
solutions that shares no code with `trl_dam`: every way of filling the empty cells with 1-4, kept when every row,
column and 2x2 box holds 1-4 once."""

from __future__ import annotations

import itertools

#: 4 empty cells (9, 11, 13, 15); its two solutions differ in all four.
TWO_SOLUTION_PUZZLE = "1234341240202040"
TWO_SOLUTIONS = ("1234341241232341", "1234341243212143")

#: 8 empty cells (5, 6, 7, 9, 11, 13, 14, 15); three solutions.
THREE_SOLUTION_PUZZLE = "1234300020404000"
THREE_SOLUTIONS = ("1234341221434321", "1234341223414123", "1234342121434312")


def _units() -> list[list[int]]:
    rows = [[4 * r + c for c in range(4)] for r in range(4)]
    columns = [[4 * r + c for r in range(4)] for c in range(4)]
    boxes = [[4 * (2 * br + r) + 2 * bc + c for r in range(2) for c in range(2)] for br in range(2) for bc in range(2)]
    return rows + columns + boxes


def brute_force_solutions(puzzle: str) -> list[str]:
    """Every valid completion of ``puzzle`` (``4 ** empty cells`` candidates), sorted."""
    blanks = [i for i, char in enumerate(puzzle) if char == "0"]
    units = _units()
    found = []
    for digits in itertools.product("1234", repeat=len(blanks)):
        grid = list(puzzle)
        for cell, digit in zip(blanks, digits):
            grid[cell] = digit
        if all(sorted(grid[i] for i in unit) == list("1234") for unit in units):
            found.append("".join(grid))
    return sorted(found)
