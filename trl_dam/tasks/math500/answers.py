r"""MATH answers: the final answer a completion gives and the gold answer of a problem.

Completion rule: the content of the last complete ``\boxed{...}`` (nested braces handled); if there is none,
the content of the last ``<answer>`` block with surrounding ``$`` removed; otherwise ``None``.
Gold rule: the dataset's ``answer`` column when present (MATH500), else the last box of the ``solution``.
"""

from __future__ import annotations

from trl_dam.tasks.answer_format import extract_answer_tag
from trl_dam.tasks.boxed import last_boxed_content

__all__ = ["extract_math_answer", "extract_math_gold"]


def extract_math_answer(text: str) -> str | None:
    """Return the final answer of a completion (see the module docstring), or ``None``."""
    boxed = last_boxed_content(text)
    if boxed is not None:
        return boxed
    answer = extract_answer_tag(text)
    if answer is None:
        return None
    answer = answer.strip().strip("$").strip()
    return answer or None


def extract_math_gold(example: dict) -> str:
    """Return the gold answer of a MATH example: its ``answer`` field, or the last box of its ``solution``.

    Raises:
        ValueError: If there is no ``answer`` field and the solution has no box.
    """
    answer = example.get("answer")
    if isinstance(answer, str) and answer.strip():
        return answer.strip()
    boxed = last_boxed_content(example.get("solution") or "")
    if boxed is None:
        raise ValueError("MATH example without an 'answer' field or a boxed answer in its 'solution'.")
    return boxed
