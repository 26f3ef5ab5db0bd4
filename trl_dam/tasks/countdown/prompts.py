"""Prompts for the Countdown task (all Countdown prompt text lives here).

Three styles:

* ``"d1"``: d1's training prompt in our own wording: the reasoning/answer format instruction, then the task
  (use every number once, ``+ - * /``, final expression alone inside ``<answer></answer>``, with an example).
* ``"d1_eval"``: d1's evaluation prompt in our own wording: the final expression goes inside ``\\boxed{}``
  within the answer block, followed by ``"Numbers: [...]\\nTarget: N"``.
* ``"compact"``: one plain-text line, ``"countdown: 44 19 35 -> 98\\n"``, for a tiny character-level model whose
  completion is just the expression.
"""

from __future__ import annotations

from collections.abc import Sequence

from trl_dam.tasks.answer_format import REASONING_FORMAT_INSTRUCTION
from trl_dam.tasks.prompting import as_prompt, check_prompt_style

__all__ = [
    "COUNTDOWN_COMPACT_TEMPLATE",
    "COUNTDOWN_EVAL_INSTRUCTIONS",
    "COUNTDOWN_EVAL_QUESTION_TEMPLATE",
    "COUNTDOWN_PROMPT_STYLES",
    "COUNTDOWN_TASK_TEMPLATE",
    "build_countdown_prompt",
    "format_countdown_prompt",
]

COUNTDOWN_PROMPT_STYLES = ("d1", "d1_eval", "compact")

COUNTDOWN_TASK_TEMPLATE = (
    "Write an arithmetic expression that equals exactly {target}, using only the numbers {numbers}. Every number "
    "in the list has to appear exactly once. You may combine them with +, -, * and / and use parentheses. After "
    "reasoning, put only the final expression inside <answer></answer> tags, with no equals sign and no target "
    "number. Example: for the numbers [2, 3, 4] and the target 5, a correct answer is <answer>\n2*4-3\n</answer>"
)
"""Task text of the d1-style training prompt; it follows the shared reasoning/answer format instruction."""

COUNTDOWN_EVAL_INSTRUCTIONS = (
    "Build an arithmetic expression from the given numbers that evaluates to exactly the given target. Every "
    "number has to be used exactly once; use +, -, * and / as needed. Think step by step, then give only the "
    "final expression inside \\boxed{}, with no equals sign and no target number. Example: \\boxed{a + b * c}\n"
    "Structure your reply exactly as follows:\n"
    "<reasoning>\nYour reasoning\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>"
)
"""Instructions of the d1-style evaluation prompt."""

COUNTDOWN_EVAL_QUESTION_TEMPLATE = "\n\nNumbers: {numbers}\nTarget: {target}"
"""Question that follows :data:`COUNTDOWN_EVAL_INSTRUCTIONS`."""

COUNTDOWN_COMPACT_TEMPLATE = "countdown: {numbers} -> {target}\n"
"""Whole prompt of the compact style; ``numbers`` are separated by spaces."""


def format_countdown_prompt(numbers: Sequence[int], target: int, style: str = "d1") -> str:
    """Return the prompt text for one problem.

    Args:
        numbers: The numbers to combine (rendered as a Python list, e.g. ``[44, 19, 35]``, in the d1 styles).
        target: The value to reach.
        style: ``"d1"``, ``"d1_eval"`` or ``"compact"``.

    Returns:
        The prompt text.
    """
    check_prompt_style(style, COUNTDOWN_PROMPT_STYLES, "countdown")
    numbers = [int(n) for n in numbers]
    target = int(target)
    if style == "compact":
        return COUNTDOWN_COMPACT_TEMPLATE.format(numbers=" ".join(map(str, numbers)), target=target)
    if style == "d1_eval":
        return COUNTDOWN_EVAL_INSTRUCTIONS + COUNTDOWN_EVAL_QUESTION_TEMPLATE.format(numbers=numbers, target=target)
    return REASONING_FORMAT_INSTRUCTION + "\n" + COUNTDOWN_TASK_TEMPLATE.format(numbers=numbers, target=target)


def build_countdown_prompt(
    numbers: Sequence[int], target: int, style: str = "d1", conversational: bool | None = None
) -> str | list[dict[str, str]]:
    """Return the TRL ``prompt`` value for one problem.

    Args:
        numbers: The numbers to combine.
        target: The value to reach.
        style: ``"d1"``, ``"d1_eval"`` or ``"compact"``.
        conversational: One-message conversation (``True``) or plain string (``False``); ``None`` picks
            conversational for the d1 styles and plain text for ``"compact"``.

    Returns:
        ``[{"role": "user", "content": text}]`` or ``text``.
    """
    if conversational is None:
        conversational = style != "compact"
    return as_prompt(format_countdown_prompt(numbers, target, style), conversational)
