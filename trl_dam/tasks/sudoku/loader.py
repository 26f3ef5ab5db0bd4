"""Load a fixed 4x4 Sudoku set (d1's test file, or a hub dataset in its layout) as a TRL prompt dataset.

d1's layout: a CSV (or any ``datasets`` source) with the columns ``Puzzle`` and ``Solution``, 16-character strings
read row by row, ``'0'`` for empty cells (e.g. ``3102200002100320,3142243142131324``). Lower-case ``puzzle`` and
``solution`` are accepted too. A CSV reader that types the columns as integers drops a puzzle's leading zeros;
they are restored, since every grid has 16 cells.
"""

from __future__ import annotations

import datasets

from trl_dam.tasks.loading import DataFiles, load_split
from trl_dam.tasks.sudoku.grid import SUDOKU_CELLS
from trl_dam.tasks.sudoku.prompts import build_sudoku_prompt

__all__ = ["SUDOKU_FILE_COLUMNS", "load_sudoku"]

#: The column names read for the puzzle and its solution, in order of preference.
SUDOKU_FILE_COLUMNS = {"puzzle": ("Puzzle", "puzzle"), "solution": ("Solution", "solution")}


def _column(names: list[str], field: str, source: str) -> str:
    for name in SUDOKU_FILE_COLUMNS[field]:
        if name in names:
            return name
    raise ValueError(
        f"The Sudoku set {source!r} has no {field} column: expected one of {SUDOKU_FILE_COLUMNS[field]}, "
        f"found {names}."
    )


def _grid(value, row: int, column: str, blanks: bool) -> str:
    """A 16-character grid from a cell of the file, restoring the leading zeros an integer column lost."""
    text = str(value).strip().zfill(SUDOKU_CELLS) if isinstance(value, int) else str(value).strip()
    allowed = "01234" if blanks else "1234"
    if len(text) != SUDOKU_CELLS or any(char not in allowed for char in text):
        raise ValueError(f"Row {row}, column {column!r}: expected 16 characters from {allowed!r}, got {value!r}.")
    return text


def load_sudoku(
    path: str,
    split: str = "test",
    name: str | None = None,
    data_files: DataFiles | None = None,
    prompt_style: str = "d1",
    conversational: bool | None = None,
    **load_kwargs,
) -> datasets.Dataset:
    """Load a Sudoku set in d1's layout and add the prompts, with the columns of :func:`generate_sudoku_dataset`.

    Args:
        path: Hub id, local folder, or packaged builder name (``"csv"``) with ``data_files``; see
            :func:`trl_dam.tasks.loading.load_split`.
        split: Split to read (a ``data_files`` file is registered under it).
        name: Hub configuration, if any.
        data_files: Local files, e.g. d1's ``4x4_test_sudoku.csv``.
        prompt_style: ``"d1"`` (alias ``"d1_eval"``) or ``"compact"``.
        conversational: Conversational prompts (``True``) or plain strings; ``None`` picks conversational for the
            d1 style and plain text for the compact style.
        **load_kwargs: Passed on to ``datasets.load_dataset``.

    Returns:
        The rows in file order, with columns ``prompt``, ``puzzle``, ``solution`` and ``num_blanks``.

    Raises:
        ValueError: If a column is missing, or a cell is not a 16-character grid (naming the row and column), or a
            solution does not keep its puzzle's givens.
    """
    table = load_split(path, split, name=name, data_files=data_files, **load_kwargs)
    source = path if data_files is None else str(data_files)
    puzzle_column = _column(table.column_names, "puzzle", source)
    solution_column = _column(table.column_names, "solution", source)
    puzzles, solutions = [], []
    for row, (puzzle, solution) in enumerate(zip(table[puzzle_column], table[solution_column], strict=True)):
        puzzles.append(_grid(puzzle, row, puzzle_column, blanks=True))
        solutions.append(_grid(solution, row, solution_column, blanks=False))
        if any(given not in ("0", digit) for given, digit in zip(puzzles[-1], solutions[-1])):
            raise ValueError(f"Row {row}: the solution {solutions[-1]} changes a given of the puzzle {puzzles[-1]}.")
    return datasets.Dataset.from_dict(
        {
            "prompt": [build_sudoku_prompt(puzzle, prompt_style, conversational) for puzzle in puzzles],
            "puzzle": puzzles,
            "solution": solutions,
            "num_blanks": [puzzle.count("0") for puzzle in puzzles],
        }
    )
