"""4x4 Sudoku task: solution-disjoint puzzle generator, loader of fixed sets (d1's layout), prompts, answer parsing
and scoring."""

from trl_dam.tasks.sudoku.answers import (
    extract_sudoku_grid,
    score_sudoku_grid,
    score_sudoku_grid_valid,
    sudoku_blank_accuracy,
    sudoku_grid_solves,
)
from trl_dam.tasks.sudoku.generator import (
    DEFAULT_NUM_TEST_SOLUTIONS,
    MAX_SUDOKU_BLANKS,
    generate_sudoku_dataset,
    generate_sudoku_puzzles,
    make_sudoku_puzzle,
    sudoku_solution_split,
)
from trl_dam.tasks.sudoku.grid import (
    NUM_SUDOKU_SOLUTIONS,
    SUDOKU_CELLS,
    count_sudoku_solutions,
    enumerate_sudoku_solutions,
    is_valid_sudoku_solution,
    solve_sudoku,
    sudoku_solutions,
)
from trl_dam.tasks.sudoku.loader import SUDOKU_FILE_COLUMNS, load_sudoku
from trl_dam.tasks.sudoku.prompts import (
    SUDOKU_COMPACT_TEMPLATE,
    SUDOKU_INSTRUCTIONS,
    SUDOKU_PROMPT_STYLES,
    SUDOKU_QUESTION_TEMPLATE,
    build_sudoku_prompt,
    format_sudoku_prompt,
)

__all__ = [
    "DEFAULT_NUM_TEST_SOLUTIONS",
    "MAX_SUDOKU_BLANKS",
    "NUM_SUDOKU_SOLUTIONS",
    "SUDOKU_CELLS",
    "SUDOKU_COMPACT_TEMPLATE",
    "SUDOKU_FILE_COLUMNS",
    "SUDOKU_INSTRUCTIONS",
    "SUDOKU_PROMPT_STYLES",
    "SUDOKU_QUESTION_TEMPLATE",
    "build_sudoku_prompt",
    "count_sudoku_solutions",
    "enumerate_sudoku_solutions",
    "extract_sudoku_grid",
    "format_sudoku_prompt",
    "generate_sudoku_dataset",
    "generate_sudoku_puzzles",
    "is_valid_sudoku_solution",
    "load_sudoku",
    "make_sudoku_puzzle",
    "score_sudoku_grid",
    "score_sudoku_grid_valid",
    "solve_sudoku",
    "sudoku_blank_accuracy",
    "sudoku_grid_solves",
    "sudoku_solution_split",
    "sudoku_solutions",
]
