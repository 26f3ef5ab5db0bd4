"""d1's format rewards for the ``<reasoning>``/``<answer>`` layout, written from their definitions.

Differences from d1 (its known bugs are not reproduced):

* the soft and strict checks accept multi-line reasoning and answer bodies (d1's regular expressions lack
  ``re.DOTALL``, so they only fire when each body is a single line);
* the strict check allows any trailing whitespace instead of requiring exactly one final newline;
* the XML-count penalty only counts the non-whitespace text after the last ``</answer>`` (d1 penalises the
  whole completion when the closing tag is not followed by a newline).

All reward functions follow TRL's signature ``f(prompts, completions, completion_ids=None, **kwargs)`` and accept
standard (string) or conversational (list of messages) completions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from trl_dam.tasks.answer_format import ANSWER_CLOSE, has_reasoning_answer_layout
from trl_dam.tasks.completions import completions_to_texts

__all__ = [
    "FORMAT_REWARD",
    "XML_TAG_REWARD",
    "soft_format_reward",
    "strict_format_reward",
    "xml_count_reward",
    "xml_count_score",
]

FORMAT_REWARD = 0.5
"""Value of the soft and strict format rewards when the layout is right."""

XML_TAG_REWARD = 0.125
"""Credit per layout tag in :func:`xml_count_score` (four tags, so at most 0.5)."""

_XML_TAGS = ("<reasoning>\n", "\n</reasoning>\n", "\n<answer>\n", "\n</answer>")
_STRICT_LAYOUT = re.compile(r"<reasoning>\n.+?\n</reasoning>\n<answer>\n.+?\n</answer>\s*", re.DOTALL)


def xml_count_score(text: str) -> float:
    """Score how well a completion uses the layout tags.

    ``0.125`` for each of ``"<reasoning>\\n"``, ``"\\n</reasoning>\\n"``, ``"\\n<answer>\\n"`` and
    ``"\\n</answer>"`` that occurs exactly once, minus ``0.001`` per character after the last ``</answer>``
    (outer whitespace of that tail ignored). At most 0.5.
    """
    score = sum(XML_TAG_REWARD for tag in _XML_TAGS if text.count(tag) == 1)
    end = text.rfind(ANSWER_CLOSE)
    if end != -1:
        score -= 0.001 * len(text[end + len(ANSWER_CLOSE) :].strip())
    return score


def xml_count_reward(
    prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Any] | None = None, **kwargs
) -> list[float]:
    """Reward each completion with :func:`xml_count_score` (at most 0.5)."""
    return [xml_count_score(text) for text in completions_to_texts(completions)]


def soft_format_reward(
    prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Any] | None = None, **kwargs
) -> list[float]:
    """0.5 if the completion starts with a reasoning block followed by an answer block, else 0.0.

    Whitespace between and around the blocks is free and bodies may span several lines.
    """
    return [FORMAT_REWARD if has_reasoning_answer_layout(text) else 0.0 for text in completions_to_texts(completions)]


def strict_format_reward(
    prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Any] | None = None, **kwargs
) -> list[float]:
    """0.5 if the completion is exactly ``<reasoning>\\n...\\n</reasoning>\\n<answer>\\n...\\n</answer>``, else 0.0.

    Only trailing whitespace may follow the closing tag; bodies may span several lines.
    """
    return [FORMAT_REWARD if _STRICT_LAYOUT.fullmatch(text) else 0.0 for text in completions_to_texts(completions)]
