"""Countdown task: solvable-problem generator, loader of fixed sets (d1's layout), brute-force solver, safe
arithmetic, prompts and answer checks."""

from trl_dam.tasks.countdown.answers import (
    COUNTDOWN_STATUSES,
    check_countdown_expression,
    countdown_is_correct,
    extract_countdown_expression,
    normalize_countdown_expression,
)
from trl_dam.tasks.countdown.arithmetic import (
    MAX_EXPRESSION_LENGTH,
    InvalidExpressionError,
    arithmetic_literals,
    evaluate_arithmetic,
    parse_arithmetic,
)
from trl_dam.tasks.countdown.generator import (
    countdown_problem_split,
    generate_countdown_dataset,
    generate_countdown_problems,
)
from trl_dam.tasks.countdown.loader import COUNTDOWN_FILE_LAYOUTS, load_countdown
from trl_dam.tasks.countdown.prompts import (
    COUNTDOWN_COMPACT_TEMPLATE,
    COUNTDOWN_EVAL_INSTRUCTIONS,
    COUNTDOWN_EVAL_QUESTION_TEMPLATE,
    COUNTDOWN_PROMPT_STYLES,
    COUNTDOWN_TASK_TEMPLATE,
    build_countdown_prompt,
    format_countdown_prompt,
)
from trl_dam.tasks.countdown.solver import countdown_reachable_values, solve_countdown

__all__ = [
    "COUNTDOWN_COMPACT_TEMPLATE",
    "COUNTDOWN_EVAL_INSTRUCTIONS",
    "COUNTDOWN_FILE_LAYOUTS",
    "COUNTDOWN_EVAL_QUESTION_TEMPLATE",
    "COUNTDOWN_PROMPT_STYLES",
    "COUNTDOWN_STATUSES",
    "COUNTDOWN_TASK_TEMPLATE",
    "MAX_EXPRESSION_LENGTH",
    "InvalidExpressionError",
    "arithmetic_literals",
    "build_countdown_prompt",
    "check_countdown_expression",
    "countdown_is_correct",
    "countdown_problem_split",
    "countdown_reachable_values",
    "evaluate_arithmetic",
    "extract_countdown_expression",
    "format_countdown_prompt",
    "generate_countdown_dataset",
    "generate_countdown_problems",
    "load_countdown",
    "normalize_countdown_expression",
    "parse_arithmetic",
    "solve_countdown",
]
