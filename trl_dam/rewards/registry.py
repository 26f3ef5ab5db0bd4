"""The reward functions d1 trains each task with, by task name."""

from __future__ import annotations

from collections.abc import Callable

from trl_dam.rewards.countdown import countdown_reward
from trl_dam.rewards.format import soft_format_reward, strict_format_reward, xml_count_reward
from trl_dam.rewards.gsm8k import gsm8k_correctness_reward, gsm8k_integer_reward
from trl_dam.rewards.math500 import math_correctness_reward, math_format_reward
from trl_dam.rewards.sudoku import sudoku_compact_format_reward, sudoku_format_reward, sudoku_reward

__all__ = ["TASK_NAMES", "get_reward_funcs"]

TASK_NAMES = ("sudoku", "countdown", "gsm8k", "math500")

_TASK_ALIASES = {"math": "math500"}


def get_reward_funcs(task: str, prompt_style: str = "d1") -> list[Callable[..., list[float | None]]]:
    """Return the reward functions for a task, to pass as ``reward_funcs`` (all weights 1, as in d1).

    * ``sudoku``: blank-cell accuracy + the format reward of the prompt style (max 1.5).
    * ``countdown``: the expression reward (max 1.0).
    * ``gsm8k``: XML count, soft format, strict format, integer answer, correctness (max 4.0).
    * ``math500`` (alias ``math``): correctness + boxed/answer-tag format (max 3.0).

    Args:
        task: Task name.
        prompt_style: ``"d1"`` or ``"compact"`` (Sudoku's compact style swaps in its own format reward).

    Returns:
        A new list of reward callables.
    """
    task = _TASK_ALIASES.get(task, task)
    if task == "sudoku":
        format_reward = sudoku_compact_format_reward if prompt_style == "compact" else sudoku_format_reward
        return [sudoku_reward, format_reward]
    if task == "countdown":
        return [countdown_reward]
    if task == "gsm8k":
        return [
            xml_count_reward,
            soft_format_reward,
            strict_format_reward,
            gsm8k_integer_reward,
            gsm8k_correctness_reward,
        ]
    if task == "math500":
        return [math_correctness_reward, math_format_reward]
    raise ValueError(f"Unknown task {task!r}; expected one of {TASK_NAMES} (or 'math').")
