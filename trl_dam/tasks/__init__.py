"""Tasks of the d1 (diffu-GRPO) benchmark suite: Sudoku 4x4, Countdown, GSM8K and MATH500.

Each task subpackage holds its prompts (one module), its data (a seeded offline generator or a
``datasets`` loader) and its answer parsing. Shared pieces: :mod:`~trl_dam.tasks.completions` (TRL completion to
text), :mod:`~trl_dam.tasks.answer_format` (the ``<reasoning>``/``<answer>`` layout), :mod:`~trl_dam.tasks.boxed`
(``\\boxed{}`` extraction) and :mod:`~trl_dam.tasks.loading` (``datasets.load_dataset`` wrapper).
"""

from trl_dam.tasks.answer_format import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    EVAL_PREFILL,
    REASONING_CLOSE,
    REASONING_FORMAT_INSTRUCTION,
    REASONING_OPEN,
    extract_answer_tag,
    has_reasoning_answer_layout,
)
from trl_dam.tasks.boxed import find_boxed_contents, last_boxed_content
from trl_dam.tasks.completions import completion_to_text, completions_to_texts
from trl_dam.tasks.countdown import (
    check_countdown_expression,
    countdown_is_correct,
    extract_countdown_expression,
    generate_countdown_dataset,
    load_countdown,
    solve_countdown,
)
from trl_dam.tasks.gsm8k import extract_gsm8k_answer, extract_gsm8k_gold, gsm8k_is_correct, load_gsm8k
from trl_dam.tasks.loading import load_split
from trl_dam.tasks.math500 import extract_math_answer, load_math500, math_answers_match
from trl_dam.tasks.sudoku import (
    extract_sudoku_grid,
    generate_sudoku_dataset,
    load_sudoku,
    score_sudoku_grid,
    solve_sudoku,
    sudoku_blank_accuracy,
    sudoku_solution_split,
)

__all__ = [
    "ANSWER_CLOSE",
    "ANSWER_OPEN",
    "EVAL_PREFILL",
    "REASONING_CLOSE",
    "REASONING_FORMAT_INSTRUCTION",
    "REASONING_OPEN",
    "check_countdown_expression",
    "completion_to_text",
    "completions_to_texts",
    "countdown_is_correct",
    "extract_answer_tag",
    "extract_countdown_expression",
    "extract_gsm8k_answer",
    "extract_gsm8k_gold",
    "extract_math_answer",
    "extract_sudoku_grid",
    "find_boxed_contents",
    "generate_countdown_dataset",
    "generate_sudoku_dataset",
    "gsm8k_is_correct",
    "has_reasoning_answer_layout",
    "last_boxed_content",
    "load_countdown",
    "load_gsm8k",
    "load_math500",
    "load_split",
    "load_sudoku",
    "math_answers_match",
    "score_sudoku_grid",
    "solve_countdown",
    "solve_sudoku",
    "sudoku_blank_accuracy",
    "sudoku_solution_split",
]
