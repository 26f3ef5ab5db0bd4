"""GSM8K rewards of d1: correctness (2.0) and integer answer (0.5); the format rewards are in ``format.py``.

Both read the training answer, :func:`trl_dam.tasks.gsm8k.extract_gsm8k_tagged_answer`: the last ``<answer>``
block (or the last box inside it) with ``$``, ``%``, thousands separators and a final period removed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from trl_dam.tasks.completions import completions_to_texts
from trl_dam.tasks.gsm8k import extract_gsm8k_tagged_answer, numbers_match

__all__ = ["GSM8K_CORRECT_REWARD", "GSM8K_INTEGER_REWARD", "gsm8k_correctness_reward", "gsm8k_integer_reward"]

GSM8K_CORRECT_REWARD = 2.0
GSM8K_INTEGER_REWARD = 0.5


def gsm8k_correctness_reward(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    completion_ids: Sequence[Any] | None = None,
    *,
    answer: Sequence[str],
    log_extra: Callable[[str, list], None] | None = None,
    **kwargs,
) -> list[float]:
    """2.0 if the answer block holds a single number equal to the gold answer, else 0.0.

    d1 compared the raw strings; here ``"1,000"``, ``"$1000"`` and ``"1000.0"`` all match a gold ``"1000"``, but
    an answer with words around the number (``"1000 apples"``) still scores 0.

    Args:
        prompts: Prompts (unused).
        completions: Completions, strings or lists of messages.
        completion_ids: Token ids (unused).
        answer: Dataset column: gold numbers (as produced by :func:`trl_dam.tasks.gsm8k.load_gsm8k`).
        log_extra: Provided by TRL trainers; logs the parsed answer as a ``gsm8k_answer`` column.
        **kwargs: Other dataset columns and trainer arguments (ignored).

    Returns:
        One reward per completion.
    """
    predictions = [extract_gsm8k_tagged_answer(text) for text in completions_to_texts(completions)]
    rewards = [
        GSM8K_CORRECT_REWARD if numbers_match(prediction, gold) else 0.0
        for prediction, gold in zip(predictions, answer, strict=True)
    ]
    if log_extra is not None:
        log_extra("gsm8k_answer", [prediction or "" for prediction in predictions])
    return rewards


def gsm8k_integer_reward(
    prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Any] | None = None, **kwargs
) -> list[float]:
    """0.5 if the answer block holds a single integer (negative allowed), else 0.0."""
    return [
        GSM8K_INTEGER_REWARD if re.fullmatch(r"-?\d+", extract_gsm8k_tagged_answer(text) or "") else 0.0
        for text in completions_to_texts(completions)
    ]
