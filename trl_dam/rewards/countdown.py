"""Countdown reward: 1.0 for a correct expression, 0.1 for the right numbers with a wrong value, else 0.0."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from trl_dam.tasks.completions import completions_to_texts
from trl_dam.tasks.countdown import check_countdown_expression, extract_countdown_expression

__all__ = ["COUNTDOWN_CORRECT_REWARD", "COUNTDOWN_PARTIAL_REWARD", "countdown_reward"]

COUNTDOWN_CORRECT_REWARD = 1.0
COUNTDOWN_PARTIAL_REWARD = 0.1
"""d1's "format score": the expression uses exactly the given numbers but misses the target."""


def countdown_reward(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    completion_ids: Sequence[Any] | None = None,
    *,
    numbers: Sequence[Sequence[int]],
    target: Sequence[int],
    log_extra: Callable[[str, list], None] | None = None,
    **kwargs,
) -> list[float]:
    """Score the expression of each completion (see :mod:`trl_dam.tasks.countdown.answers` for the parsing).

    * 1.0: a valid expression (integer literals, ``+ - * /``, parentheses) that uses each number exactly once and
      equals the target;
    * 0.1: it uses exactly the given numbers but its value differs from the target (or divides by zero);
    * 0.0: no expression, an invalid one, or the wrong numbers. (d1 gives 0.1 to any answer-tagged text whose
      numbers are wrong; here that earns nothing.)

    Args:
        prompts: Prompts (unused).
        completions: Completions, strings or lists of messages.
        completion_ids: Token ids (unused).
        numbers: Dataset column: the numbers of each problem.
        target: Dataset column: the target of each problem.
        log_extra: Provided by TRL trainers; logs the parsed expression as a ``countdown_expression`` column.
        **kwargs: Other dataset columns and trainer arguments (ignored).

    Returns:
        One reward per completion.
    """
    expressions = [extract_countdown_expression(text) for text in completions_to_texts(completions)]
    rewards = []
    for expression, numbers_, target_ in zip(expressions, numbers, target, strict=True):
        status = check_countdown_expression(expression, numbers_, target_)
        if status == "correct":
            rewards.append(COUNTDOWN_CORRECT_REWARD)
        elif status == "wrong_value":
            rewards.append(COUNTDOWN_PARTIAL_REWARD)
        else:
            rewards.append(0.0)
    if log_extra is not None:
        log_extra("countdown_expression", [expression or "" for expression in expressions])
    return rewards
