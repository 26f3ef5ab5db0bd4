"""Seeded, offline generator of 4x4 Sudoku puzzles with unique solutions, split by solution grid.

Only 288 complete 4x4 grids exist, and d1's training and test puzzles share them. Here the 288 grids are split
once, deterministically (``split_seed``), into train and test solution sets, and every puzzle of a split is made
from a grid of that split only, so train and held-out puzzles never share a solution. A puzzle is made by
blanking cells of its grid in random order, keeping a blank only if the puzzle still has exactly one solution
(checked with the backtracking solver), until it has the requested number of empty cells.
"""

from __future__ import annotations

import random

import datasets

from trl_dam.tasks.sudoku.grid import (
    NUM_SUDOKU_SOLUTIONS,
    SUDOKU_CELLS,
    count_sudoku_solutions,
    enumerate_sudoku_solutions,
)
from trl_dam.tasks.sudoku.prompts import build_sudoku_prompt

__all__ = [
    "DEFAULT_NUM_TEST_SOLUTIONS",
    "MAX_SUDOKU_BLANKS",
    "generate_sudoku_dataset",
    "generate_sudoku_puzzles",
    "make_sudoku_puzzle",
    "sudoku_solution_split",
]

DEFAULT_NUM_TEST_SOLUTIONS = 88
"""Held-out solution grids by default (288 - 200, the train/test sizes SPG used for its solution-disjoint split)."""

MAX_SUDOKU_BLANKS = 12
"""A 4x4 puzzle with a unique solution has at least 4 givens, hence at most 12 empty cells."""

_MAX_CONSECUTIVE_FAILURES = 2_000


def sudoku_solution_split(
    split: str, num_test_solutions: int = DEFAULT_NUM_TEST_SOLUTIONS, split_seed: int = 0
) -> list[str]:
    """Return the solution grids reserved for ``split``.

    The 288 grids are shuffled with ``random.Random(split_seed)``; the first ``num_test_solutions`` form the test
    set and the rest the train set. The partition depends only on ``num_test_solutions`` and ``split_seed``, not
    on the seed used to draw puzzles.

    Args:
        split: ``"train"`` or ``"test"``.
        num_test_solutions: Size of the test set of grids, between 1 and 287.
        split_seed: Seed of the partition.

    Returns:
        The grids of the split, sorted.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if not 0 < num_test_solutions < NUM_SUDOKU_SOLUTIONS:
        raise ValueError(f"num_test_solutions must be in [1, {NUM_SUDOKU_SOLUTIONS - 1}], got {num_test_solutions}.")
    solutions = list(enumerate_sudoku_solutions())
    random.Random(split_seed).shuffle(solutions)
    chosen = solutions[:num_test_solutions] if split == "test" else solutions[num_test_solutions:]
    return sorted(chosen)


def make_sudoku_puzzle(solution: str, num_blanks: int, rng: random.Random) -> str | None:
    """Blank ``num_blanks`` cells of ``solution`` so that the puzzle keeps a unique solution.

    Cells are visited in an order drawn from ``rng``; each is blanked if the puzzle stays uniquely solvable.

    Args:
        solution: Complete 16-character grid.
        num_blanks: Number of empty cells wanted.
        rng: Random number generator.

    Returns:
        The puzzle, or ``None`` if this visiting order cannot reach ``num_blanks`` empty cells.
    """
    cells = list(solution)
    order = rng.sample(range(SUDOKU_CELLS), SUDOKU_CELLS)
    blanks = 0
    for cell in order:
        if blanks == num_blanks:
            break
        digit, cells[cell] = cells[cell], "0"
        if count_sudoku_solutions("".join(cells), limit=2) == 1:
            blanks += 1
        else:
            cells[cell] = digit
    return "".join(cells) if blanks == num_blanks else None


def _blank_range(num_blanks: int | tuple[int, int]) -> tuple[int, int]:
    """Validate ``num_blanks`` and return it as an inclusive ``(low, high)`` range."""
    low, high = (num_blanks, num_blanks) if isinstance(num_blanks, int) else tuple(num_blanks)
    if not 1 <= low <= high <= MAX_SUDOKU_BLANKS:
        raise ValueError(f"num_blanks must be in [1, {MAX_SUDOKU_BLANKS}] (or such a range), got {num_blanks}.")
    return low, high


def generate_sudoku_puzzles(
    num_puzzles: int,
    seed: int = 0,
    num_blanks: int | tuple[int, int] = 8,
    split: str = "train",
    num_test_solutions: int = DEFAULT_NUM_TEST_SOLUTIONS,
    split_seed: int = 0,
) -> list[tuple[str, str]]:
    """Draw distinct uniquely-solvable puzzles from the solution grids of ``split``.

    Args:
        num_puzzles: Number of puzzles.
        seed: Seed of the puzzle draw (grids, blank counts and blanked cells).
        num_blanks: Empty cells per puzzle: an int, or an inclusive ``(min, max)`` range drawn uniformly per
            puzzle. d1's held-out set has exactly 8.
        split: ``"train"`` or ``"test"``; see :func:`sudoku_solution_split`.
        num_test_solutions: Size of the held-out set of grids.
        split_seed: Seed of the train/test partition of the grids.

    Returns:
        ``(puzzle, solution)`` pairs, all puzzles distinct.

    Raises:
        RuntimeError: If not enough distinct puzzles can be found (too many asked for the blank range).
    """
    low, high = _blank_range(num_blanks)
    solutions = sudoku_solution_split(split, num_test_solutions, split_seed)
    rng = random.Random(seed)
    seen: set[str] = set()
    pairs: list[tuple[str, str]] = []
    failures = 0
    while len(pairs) < num_puzzles:
        solution = rng.choice(solutions)
        puzzle = make_sudoku_puzzle(solution, rng.randint(low, high), rng)
        if puzzle is None or puzzle in seen:
            failures += 1
            if failures > _MAX_CONSECUTIVE_FAILURES:
                raise RuntimeError(
                    f"Found only {len(pairs)} distinct puzzles with {num_blanks} blanks out of {num_puzzles} asked."
                )
            continue
        failures = 0
        seen.add(puzzle)
        pairs.append((puzzle, solution))
    return pairs


def generate_sudoku_dataset(
    num_puzzles: int,
    seed: int = 0,
    num_blanks: int | tuple[int, int] = 8,
    split: str = "train",
    prompt_style: str = "d1",
    conversational: bool | None = None,
    num_test_solutions: int = DEFAULT_NUM_TEST_SOLUTIONS,
    split_seed: int = 0,
) -> datasets.Dataset:
    """Generate a Sudoku dataset ready for a TRL-style trainer.

    Args:
        num_puzzles: Number of puzzles (rows).
        seed: Seed of the puzzle draw.
        num_blanks: Empty cells per puzzle, an int or an inclusive ``(min, max)`` range.
        split: ``"train"`` or ``"test"``: which solution grids the puzzles come from. The two splits never share
            a solution grid for the same ``num_test_solutions`` and ``split_seed``.
        prompt_style: ``"d1"`` (alias ``"d1_eval"``) or ``"compact"``; see :mod:`trl_dam.tasks.sudoku.prompts`.
        conversational: Conversational prompts (``True``) or plain strings (``False``); ``None`` picks
            conversational for the d1 style and plain text for the compact style.
        num_test_solutions: Size of the held-out set of grids.
        split_seed: Seed of the train/test partition of the grids.

    Returns:
        A ``datasets.Dataset`` with columns ``prompt``, ``puzzle`` and ``solution`` (16-character strings,
        ``'0'`` for empty cells) and ``num_blanks``.
    """
    pairs = generate_sudoku_puzzles(num_puzzles, seed, num_blanks, split, num_test_solutions, split_seed)
    return datasets.Dataset.from_dict(
        {
            "prompt": [build_sudoku_prompt(puzzle, prompt_style, conversational) for puzzle, _ in pairs],
            "puzzle": [puzzle for puzzle, _ in pairs],
            "solution": [solution for _, solution in pairs],
            "num_blanks": [puzzle.count("0") for puzzle, _ in pairs],
        }
    )
