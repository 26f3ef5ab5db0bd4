"""MATH / MATH500 task: loader, prompts, boxed-answer extraction and math-verify equivalence."""

from trl_dam.tasks.math500.answers import extract_math_answer, extract_math_gold
from trl_dam.tasks.math500.equivalence import is_math_verify_available, math_answers_match, require_math_verify
from trl_dam.tasks.math500.loader import MATH500_HUB_ID, MATH_TRAIN_HUB_ID, load_math500
from trl_dam.tasks.math500.prompts import (
    MATH_EVAL_INSTRUCTIONS,
    MATH_PROMPT_STYLES,
    MATH_TASK_INSTRUCTION,
    build_math_prompt,
    format_math_prompt,
)

__all__ = [
    "MATH500_HUB_ID",
    "MATH_EVAL_INSTRUCTIONS",
    "MATH_PROMPT_STYLES",
    "MATH_TASK_INSTRUCTION",
    "MATH_TRAIN_HUB_ID",
    "build_math_prompt",
    "extract_math_answer",
    "extract_math_gold",
    "format_math_prompt",
    "is_math_verify_available",
    "load_math500",
    "math_answers_match",
    "require_math_verify",
]
