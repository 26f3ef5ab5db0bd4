"""MATH rewards of d1: correctness (2.0, equivalence checked with math-verify) and boxed/answer-tag format."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from trl_dam.tasks.boxed import find_boxed_contents, last_boxed_content
from trl_dam.tasks.completions import completions_to_texts
from trl_dam.tasks.math500 import extract_math_answer, math_answers_match

__all__ = ["MATH_CORRECT_REWARD", "math_correctness_reward", "math_format_reward"]

MATH_CORRECT_REWARD = 2.0

_ANSWER_BLOCK = re.compile(r"<answer>.*?</answer>", re.DOTALL)


def math_correctness_reward(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    completion_ids: Sequence[Any] | None = None,
    *,
    answer: Sequence[str],
    log_extra: Callable[[str, list], None] | None = None,
    **kwargs,
) -> list[float]:
    """2.0 if the completion's final answer is mathematically equivalent to the gold answer, else 0.0.

    The final answer is the last ``\\boxed{}`` (fallback: the answer block); equivalence is decided by
    math-verify (see :func:`trl_dam.tasks.math500.math_answers_match`). A gold value that still contains a box
    (a full worked solution, as d1 passed it) is reduced to its last box first.

    Args:
        prompts: Prompts (unused).
        completions: Completions, strings or lists of messages.
        completion_ids: Token ids (unused).
        answer: Dataset column: gold final answers.
        log_extra: Provided by TRL trainers; logs the parsed answer as a ``math_answer`` column.
        **kwargs: Other dataset columns and trainer arguments (ignored).

    Returns:
        One reward per completion.

    Raises:
        ImportError: If math-verify is not installed.
    """
    predictions = [extract_math_answer(text) for text in completions_to_texts(completions)]
    rewards = []
    for prediction, gold in zip(predictions, answer, strict=True):
        gold = last_boxed_content(gold) or gold
        rewards.append(MATH_CORRECT_REWARD if math_answers_match(prediction, gold) else 0.0)
    if log_extra is not None:
        log_extra("math_answer", [prediction or "" for prediction in predictions])
    return rewards


def math_format_reward(
    prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Any] | None = None, **kwargs
) -> list[float]:
    """d1's boxed-and-answer-tags format reward, with its backspace bug fixed; between 0.25 and 1.0.

    ``0.5`` if the completion has a complete ``<answer>...</answer>`` block, plus ``0.5`` if it has a complete
    ``\\boxed{...}``, else ``0.25``. (d1 tested for ``"\\x08oxed"``, so its boxed term was always 0.25.)
    """
    rewards = []
    for text in completions_to_texts(completions):
        tags = 0.5 if _ANSWER_BLOCK.search(text) else 0.0
        boxed = 0.5 if find_boxed_contents(text) else 0.25
        rewards.append(tags + boxed)
    return rewards
