"""Prompts for the 4x4 Sudoku task (all Sudoku prompt text lives here).

Two styles:

* ``"d1"``: d1's instructions (rules, 16-character answer, reasoning/answer layout) in our own wording, followed
  by the puzzle. d1 uses the same prompt for training and evaluation, so ``"d1_eval"`` is an alias.
* ``"compact"``: a one-line plain-text prompt, ``"4x4 sudoku: <16 digits>\\n"``, for a tiny character-level
  model whose completion is just the 16 digits of the solved grid.
"""

from __future__ import annotations

from trl_dam.tasks.prompting import as_prompt, check_prompt_style

__all__ = [
    "SUDOKU_COMPACT_TEMPLATE",
    "SUDOKU_INSTRUCTIONS",
    "SUDOKU_PROMPT_STYLES",
    "SUDOKU_QUESTION_TEMPLATE",
    "build_sudoku_prompt",
    "format_sudoku_prompt",
]

SUDOKU_PROMPT_STYLES = ("d1", "d1_eval", "compact")

SUDOKU_INSTRUCTIONS = (
    "\nSolve the 4x4 Sudoku puzzle below. The grid is written as a 16-character string, read row by row from the "
    "top-left cell to the bottom-right cell, in which '0' marks an empty cell.\n\n"
    "Rules:\n"
    "- Put a digit from 1 to 4 in every empty cell\n"
    "- Every row must contain each of the digits 1-4 once\n"
    "- Every column must contain each of the digits 1-4 once\n"
    "- Every 2x2 box must contain each of the digits 1-4 once\n\n"
    "Important: your final answer must be the whole solved grid, a 16-character string made only of the digits "
    "1-4.\n\n"
    "Structure your reply exactly as follows:\n"
    "<reasoning>\n"
    "How you solved the puzzle, step by step\n"
    "</reasoning>\n"
    "<answer>\n"
    "[the 16-digit solved grid, without spaces or separators]\n"
    "</answer>\n"
)
"""Instructions of the d1-style Sudoku prompt (own wording of the instructions d1 gives)."""

SUDOKU_QUESTION_TEMPLATE = "\n\nPuzzle to solve: {puzzle}\n"
"""Line that follows :data:`SUDOKU_INSTRUCTIONS` in the d1-style prompt."""

SUDOKU_COMPACT_TEMPLATE = "4x4 sudoku: {puzzle}\n"
"""Whole prompt of the compact style."""


def format_sudoku_prompt(puzzle: str, style: str = "d1") -> str:
    """Return the prompt text for one puzzle.

    Args:
        puzzle: 16-character grid with ``'0'`` for empty cells.
        style: ``"d1"`` (alias ``"d1_eval"``) or ``"compact"``.

    Returns:
        The prompt text.
    """
    check_prompt_style(style, SUDOKU_PROMPT_STYLES, "sudoku")
    if style == "compact":
        return SUDOKU_COMPACT_TEMPLATE.format(puzzle=puzzle)
    return SUDOKU_INSTRUCTIONS + SUDOKU_QUESTION_TEMPLATE.format(puzzle=puzzle)


def build_sudoku_prompt(
    puzzle: str, style: str = "d1", conversational: bool | None = None
) -> str | list[dict[str, str]]:
    """Return the TRL ``prompt`` value for one puzzle.

    Args:
        puzzle: 16-character grid with ``'0'`` for empty cells.
        style: ``"d1"`` (alias ``"d1_eval"``) or ``"compact"``.
        conversational: Return a one-message conversation (``True``) or the plain string (``False``). ``None``
            picks conversational for the d1 styles and plain text for ``"compact"``.

    Returns:
        ``[{"role": "user", "content": text}]`` or ``text``.
    """
    if conversational is None:
        conversational = style != "compact"
    return as_prompt(format_sudoku_prompt(puzzle, style), conversational)
