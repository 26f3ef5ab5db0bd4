"""Reward functions for the d1 tasks, with TRL's signature ``f(prompts, completions, completion_ids=None,
**dataset_columns) -> list[float | None]``; completions may be strings or lists of chat messages."""

from trl_dam.rewards.countdown import COUNTDOWN_CORRECT_REWARD, COUNTDOWN_PARTIAL_REWARD, countdown_reward
from trl_dam.rewards.format import (
    FORMAT_REWARD,
    XML_TAG_REWARD,
    soft_format_reward,
    strict_format_reward,
    xml_count_reward,
    xml_count_score,
)
from trl_dam.rewards.gsm8k import (
    GSM8K_CORRECT_REWARD,
    GSM8K_INTEGER_REWARD,
    gsm8k_correctness_reward,
    gsm8k_integer_reward,
)
from trl_dam.rewards.math500 import MATH_CORRECT_REWARD, math_correctness_reward, math_format_reward
from trl_dam.rewards.registry import TASK_NAMES, get_reward_funcs
from trl_dam.rewards.sudoku import (
    sudoku_compact_format_reward,
    sudoku_format_reward,
    sudoku_reward,
    sudoku_valid_reward,
)

__all__ = [
    "COUNTDOWN_CORRECT_REWARD",
    "COUNTDOWN_PARTIAL_REWARD",
    "FORMAT_REWARD",
    "GSM8K_CORRECT_REWARD",
    "GSM8K_INTEGER_REWARD",
    "MATH_CORRECT_REWARD",
    "TASK_NAMES",
    "XML_TAG_REWARD",
    "countdown_reward",
    "get_reward_funcs",
    "gsm8k_correctness_reward",
    "gsm8k_integer_reward",
    "math_correctness_reward",
    "math_format_reward",
    "soft_format_reward",
    "strict_format_reward",
    "sudoku_compact_format_reward",
    "sudoku_format_reward",
    "sudoku_reward",
    "sudoku_valid_reward",
    "xml_count_reward",
    "xml_count_score",
]
