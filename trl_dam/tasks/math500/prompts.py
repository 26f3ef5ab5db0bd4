"""Prompts for MATH / MATH500 (all MATH prompt text lives here).

* ``"d1"``: d1's training prompt in our own wording: the shared reasoning/answer format instruction, then "solve
  step by step, final answer in ``\\boxed{}``", then the problem.
* ``"d1_eval"``: d1's evaluation prompt in our own wording (final answer in ``\\boxed{}`` inside the answer
  block), then the problem. d1's evaluation also prefills ``"<reasoning>"`` after the chat template.
"""

from __future__ import annotations

from trl_dam.tasks.answer_format import REASONING_FORMAT_INSTRUCTION
from trl_dam.tasks.prompting import as_prompt, check_prompt_style

__all__ = [
    "MATH_EVAL_INSTRUCTIONS",
    "MATH_PROMPT_STYLES",
    "MATH_TASK_INSTRUCTION",
    "build_math_prompt",
    "format_math_prompt",
]

MATH_PROMPT_STYLES = ("d1", "d1_eval")

MATH_TASK_INSTRUCTION = (
    "You are an expert mathematician. You will be given a problem: solve it step by step and put the final "
    "answer inside \\boxed{}. "
)
"""Task instruction of the d1-style training prompt (follows the reasoning/answer format instruction)."""

MATH_EVAL_INSTRUCTIONS = (
    MATH_TASK_INSTRUCTION
    + "\nStructure your reply exactly as follows:\n<reasoning>\nYour reasoning\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>"
)
"""Instructions of the d1-style evaluation prompt."""


def format_math_prompt(problem: str, style: str = "d1") -> str:
    """Return the prompt text for one problem (``style`` is ``"d1"`` or ``"d1_eval"``)."""
    check_prompt_style(style, MATH_PROMPT_STYLES, "math")
    if style == "d1_eval":
        return f"{MATH_EVAL_INSTRUCTIONS}\n\n{problem}"
    return f"{REASONING_FORMAT_INSTRUCTION}\n\n{MATH_TASK_INSTRUCTION}\n\n{problem}"


def build_math_prompt(problem: str, style: str = "d1", conversational: bool = True) -> str | list[dict[str, str]]:
    """Return the TRL ``prompt`` value for one problem: a one-message conversation, or the plain string."""
    return as_prompt(format_math_prompt(problem, style), conversational)
