"""Prompts for GSM8K (all GSM8K prompt text lives here).

* ``"d1"``: d1's training prompt, i.e. the shared reasoning/answer format instruction followed by the question.
* ``"d1_eval"``: d1's evaluation prompt in our own wording: solve step by step, final answer in ``\\boxed{}``
  inside the answer block, then the question. d1's evaluation also prefills ``"<reasoning>"`` after the chat
  template (see :data:`trl_dam.tasks.answer_format.EVAL_PREFILL`).
"""

from __future__ import annotations

from trl_dam.tasks.answer_format import REASONING_FORMAT_INSTRUCTION
from trl_dam.tasks.prompting import as_prompt, check_prompt_style

__all__ = ["GSM8K_EVAL_INSTRUCTIONS", "GSM8K_PROMPT_STYLES", "build_gsm8k_prompt", "format_gsm8k_prompt"]

GSM8K_PROMPT_STYLES = ("d1", "d1_eval")

GSM8K_EVAL_INSTRUCTIONS = (
    "You are an expert mathematician. You will be given a problem: solve it step by step and put the final "
    "answer inside \\boxed{}. \n"
    "Structure your reply exactly as follows:\n"
    "<reasoning>\nYour reasoning\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>"
)
"""Instructions of the d1-style evaluation prompt (own wording of d1's evaluation system prompt)."""


def format_gsm8k_prompt(question: str, style: str = "d1") -> str:
    """Return the prompt text for one question (``style`` is ``"d1"`` or ``"d1_eval"``)."""
    check_prompt_style(style, GSM8K_PROMPT_STYLES, "gsm8k")
    instructions = GSM8K_EVAL_INSTRUCTIONS if style == "d1_eval" else REASONING_FORMAT_INSTRUCTION
    return f"{instructions}\n\n{question}"


def build_gsm8k_prompt(question: str, style: str = "d1", conversational: bool = True) -> str | list[dict[str, str]]:
    """Return the TRL ``prompt`` value for one question: a one-message conversation, or the plain string."""
    return as_prompt(format_gsm8k_prompt(question, style), conversational)
