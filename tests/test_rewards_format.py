"""d1 format rewards (XML count, soft and strict layout) and the reward registry."""

import pytest

from trl_dam.rewards import (
    countdown_reward,
    get_reward_funcs,
    gsm8k_correctness_reward,
    math_correctness_reward,
    soft_format_reward,
    strict_format_reward,
    sudoku_compact_format_reward,
    sudoku_format_reward,
    sudoku_reward,
    xml_count_reward,
    xml_count_score,
)

PERFECT = "<reasoning>\nAdd them.\n</reasoning>\n<answer>\n7\n</answer>\n"
MULTILINE = "<reasoning>\nStep 1: add.\nStep 2: check.\n</reasoning>\n<answer>\n7\n</answer>"
ONE_LINE = "<reasoning>add</reasoning> <answer>7</answer>"
PROSE = "The answer is 7."


def _conversation(text):
    return [{"role": "assistant", "content": text}]


def test_xml_count():
    assert xml_count_score(PERFECT) == 0.5
    assert xml_count_score(MULTILINE) == 0.5
    assert xml_count_score(PERFECT + "extra") == pytest.approx(0.495)
    assert xml_count_score(ONE_LINE) == 0.0
    assert xml_count_score("<reasoning>\nr\n</reasoning>\n") == 0.25
    assert xml_count_score(PROSE) == 0.0


def test_soft_format_accepts_multiline_bodies():
    rewards = soft_format_reward(None, [PERFECT, MULTILINE, ONE_LINE, PROSE, "<answer>7</answer>"])
    assert rewards == [0.5, 0.5, 0.5, 0.0, 0.0]


def test_strict_format():
    rewards = strict_format_reward(None, [PERFECT, MULTILINE, ONE_LINE, PROSE, PERFECT + "extra"])
    assert rewards == [0.5, 0.5, 0.0, 0.0, 0.0]


def test_conversational_and_trl_keywords():
    called = {}
    kwargs = {
        "prompts": [[{"role": "user", "content": "q"}]] * 2,
        "completions": [_conversation(PERFECT), _conversation(PROSE)],
        "completion_ids": [[1, 2], [3]],
        "trainer_state": None,
        "log_extra": lambda name, values: called.setdefault(name, values),
        "log_metric": lambda name, value: None,
        "answer": ["7", "7"],
    }
    assert xml_count_reward(**kwargs) == [0.5, 0.0]
    assert soft_format_reward(**kwargs) == [0.5, 0.0]
    assert strict_format_reward(**kwargs) == [0.5, 0.0]


def test_registry():
    assert get_reward_funcs("sudoku") == [sudoku_reward, sudoku_format_reward]
    assert get_reward_funcs("sudoku", prompt_style="compact") == [sudoku_reward, sudoku_compact_format_reward]
    assert get_reward_funcs("countdown") == [countdown_reward]
    assert get_reward_funcs("gsm8k")[-1] is gsm8k_correctness_reward and len(get_reward_funcs("gsm8k")) == 5
    assert get_reward_funcs("math")[0] is math_correctness_reward
    with pytest.raises(ValueError):
        get_reward_funcs("chess")
