"""Countdown reward on correct, wrong-value, wrong-number and malformed completions."""

import pytest

from trl_dam.rewards import countdown_reward

NUMBERS = [44, 19, 35]
TARGET = 98


def _reward(text):
    return countdown_reward(None, [text], numbers=[NUMBERS], target=[TARGET])[0]


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<reasoning>\n44 + 19 = 63, 63 + 35 = 98\n</reasoning>\n<answer>\n44 + 19 + 35\n</answer>", 1.0),
        ("<reasoning>\nr\n</reasoning>\n<answer>\n\\boxed{(44+19)+35}\n</answer>", 1.0),  # eval-style box
        ("<answer>35 + 44 + 19 = 98</answer>", 1.0),  # '= target' suffix dropped
        ("44+19+35", 1.0),  # compact completion
        ("<answer>44 * 19 - 35</answer>", 0.1),  # right numbers, wrong value
        ("<answer>44 / (35 - 35) + 19</answer>", 0.0),  # 35 used twice
        ("<answer>44 + 54</answer>", 0.0),  # wrong numbers
        ("<answer>44 + 19 + 35 + 0</answer>", 0.0),  # extra number
        ("<answer>44 ** 19 - 35</answer>", 0.0),  # disallowed operator
        ("<answer>__import__('os')</answer>", 0.0),  # not arithmetic
        ("I could not find it.", 0.0),
        ("", 0.0),
    ],
)
def test_values(completion, expected):
    assert _reward(completion) == expected


def test_division_by_zero_with_the_right_numbers_is_a_wrong_value():
    assert countdown_reward(None, ["<answer>3 / (4 - 4)</answer>"], numbers=[[3, 4, 4]], target=[1]) == [0.1]


def test_batch_conversational_and_log_extra():
    logged = {}
    rewards = countdown_reward(
        prompts=[[{"role": "user", "content": "p"}]] * 2,
        completions=[
            [{"role": "assistant", "content": "<answer>2*4-3</answer>"}],
            [{"role": "assistant", "content": "<answer>2+4+3</answer>"}],
        ],
        completion_ids=None,
        numbers=[[2, 3, 4], [2, 3, 4]],
        target=[5, 5],
        expression=["2*4-3", "2*4-3"],
        log_extra=lambda name, values: logged.update({name: values}),
    )
    assert rewards == [1.0, 0.1]
    assert logged == {"countdown_expression": ["2*4-3", "2+4+3"]}


def test_mismatched_column_length():
    with pytest.raises(ValueError):
        countdown_reward(None, ["1+2+3"], numbers=[[1, 2, 3], [1, 2, 3]], target=[6, 6])
