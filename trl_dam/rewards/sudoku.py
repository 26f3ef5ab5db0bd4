"""Sudoku rewards: blank-cell accuracy (d1's reward, and a validity-aware variant that accepts every solution of
the puzzle) and format rewards for the d1 and compact styles.

The answer is read with :func:`trl_dam.tasks.sudoku.extract_sudoku_grid`: the last ``<answer>`` block if there
is one, else the digits of the whole completion.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from trl_dam.tasks.answer_format import extract_answer_tag, has_reasoning_answer_layout
from trl_dam.tasks.completions import completions_to_texts
from trl_dam.tasks.sudoku import extract_sudoku_grid, score_sudoku_grid, score_sudoku_grid_valid

__all__ = ["sudoku_compact_format_reward", "sudoku_format_reward", "sudoku_reward", "sudoku_valid_reward"]

_GRID = re.compile(r"[1-4]{16}")


def sudoku_reward(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    completion_ids: Sequence[Any] | None = None,
    *,
    puzzle: Sequence[str],
    solution: Sequence[str],
    log_extra: Callable[[str, list], None] | None = None,
    **kwargs,
) -> list[float]:
    """Fraction of the puzzle's empty cells that the completion fills correctly, in ``[0, 1]``.

    An unparseable completion (no digit in the answer) scores 0.0. Given cells are not checked (as in d1).

    Args:
        prompts: Prompts (unused).
        completions: Completions, strings or lists of messages.
        completion_ids: Token ids (unused).
        puzzle: Dataset column: 16-character puzzles with ``'0'`` for empty cells.
        solution: Dataset column: 16-character solutions.
        log_extra: Provided by TRL trainers; logs the parsed grid as a ``sudoku_grid`` column.
        **kwargs: Other dataset columns and trainer arguments (ignored).

    Returns:
        One reward per completion.
    """
    grids = _grids(completions, log_extra)
    return [
        _blank_share(grid, score_sudoku_grid(grid, puzzle_, solution_))
        for grid, puzzle_, solution_ in zip(grids, puzzle, solution, strict=True)
    ]


def sudoku_valid_reward(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    completion_ids: Sequence[Any] | None = None,
    *,
    puzzle: Sequence[str],
    log_extra: Callable[[str, list], None] | None = None,
    **kwargs,
) -> list[float]:
    """Validity-aware blank-cell accuracy, in ``[0, 1]``: like :func:`sudoku_reward`, but every solution of the
    puzzle is accepted (:func:`trl_dam.tasks.sudoku.score_sudoku_grid_valid`), so a grid that is a valid Sudoku
    keeping the givens scores 1.0 even where it differs from the stored solution. It needs no ``solution`` column;
    on puzzles with one solution it equals :func:`sudoku_reward`.

    Args:
        prompts: Prompts (unused).
        completions: Completions, strings or lists of messages.
        completion_ids: Token ids (unused).
        puzzle: Dataset column: 16-character puzzles with ``'0'`` for empty cells.
        log_extra: Provided by TRL trainers; logs the parsed grid as a ``sudoku_grid`` column.
        **kwargs: Other dataset columns and trainer arguments (ignored).

    Returns:
        One reward per completion.
    """
    grids = _grids(completions, log_extra)
    return [
        _blank_share(grid, score_sudoku_grid_valid(grid, puzzle_)) for grid, puzzle_ in zip(grids, puzzle, strict=True)
    ]


def _grids(completions: Sequence[Any], log_extra: Callable[[str, list], None] | None) -> list[str | None]:
    """The parsed grid of every completion, logged as the ``sudoku_grid`` column when the trainer asks."""
    grids = [extract_sudoku_grid(text) for text in completions_to_texts(completions)]
    if log_extra is not None:
        log_extra("sudoku_grid", [grid or "" for grid in grids])
    return grids


def _blank_share(grid: str | None, counts: tuple[int, int]) -> float:
    """``correct / empty cells``; a puzzle without empty cells scores 1.0 for any parseable answer."""
    correct, total = counts
    return correct / total if total else float(grid is not None)


def sudoku_format_reward(
    prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Any] | None = None, **kwargs
) -> list[float]:
    """Format reward for the d1 style, at most 0.5.

    ``0.25`` if the completion has the reasoning-then-answer layout, plus ``0.25`` if the last answer block holds
    exactly 16 digits from 1-4 and nothing else (what the prompt asks for).
    """
    rewards = []
    for text in completions_to_texts(completions):
        answer = extract_answer_tag(text)
        layout = 0.25 if has_reasoning_answer_layout(text) else 0.0
        grid = 0.25 if answer is not None and _GRID.fullmatch(answer) else 0.0
        rewards.append(layout + grid)
    return rewards


def sudoku_compact_format_reward(
    prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Any] | None = None, **kwargs
) -> list[float]:
    """Format reward for the compact style: 0.5 if the completion is exactly 16 digits from 1-4 (outer
    whitespace ignored), else 0.0."""
    return [0.5 if _GRID.fullmatch(text.strip()) else 0.0 for text in completions_to_texts(completions)]
