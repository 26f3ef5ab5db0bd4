"""The d1 reasoning/answer output format: ``<reasoning>...</reasoning>`` followed by ``<answer>...</answer>``.

d1 (diffu-GRPO) asks the model to reply in this layout on every task::

    <reasoning>
    ...
    </reasoning>
    <answer>
    ...
    </answer>

This module holds the tags, the shared format instruction that training prompts end with, the evaluation
prefill, and the helper that reads the answer block back.
"""

from __future__ import annotations

import re

__all__ = [
    "ANSWER_CLOSE",
    "ANSWER_OPEN",
    "EVAL_PREFILL",
    "REASONING_CLOSE",
    "REASONING_FORMAT_INSTRUCTION",
    "REASONING_OPEN",
    "extract_answer_tag",
    "has_reasoning_answer_layout",
]

REASONING_OPEN = "<reasoning>"
REASONING_CLOSE = "</reasoning>"
ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"

REASONING_FORMAT_INSTRUCTION = (
    "\nStructure your reply exactly as follows:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>\n"
)
"""Format instruction placed at the start of d1-style training prompts (own wording of d1's instruction)."""

EVAL_PREFILL = REASONING_OPEN
"""Text d1's evaluation appends after the chat template's generation prompt, so every completion starts inside
the reasoning block. Add it to the templated prompt when reproducing d1's evaluation numbers."""

_LAYOUT = re.compile(r"\s*<reasoning>.*?</reasoning>\s*<answer>.*?</answer>", re.DOTALL)


def extract_answer_tag(text: str) -> str | None:
    """Return the stripped content of the last ``<answer>`` block, or ``None`` if there is no ``<answer>`` tag.

    The block runs from the last ``<answer>`` to the next ``</answer>``. A block whose closing tag is missing
    (e.g. a generation cut by the length limit) runs to the end of the text.

    Args:
        text: Completion text.

    Returns:
        The answer text without surrounding whitespace, or ``None``.
    """
    start = text.rfind(ANSWER_OPEN)
    if start == -1:
        return None
    body = text[start + len(ANSWER_OPEN) :]
    end = body.find(ANSWER_CLOSE)
    if end != -1:
        body = body[:end]
    return body.strip()


def has_reasoning_answer_layout(text: str) -> bool:
    """Whether ``text`` starts with a reasoning block followed by an answer block (bodies may span lines).

    Leading whitespace is allowed and anything after ``</answer>`` is ignored. Unlike d1's soft format check,
    multi-line reasoning and answer bodies are accepted.
    """
    return _LAYOUT.match(text) is not None
