"""MATH rewards: math-verify correctness and the (fixed) boxed/answer-tag format reward."""

import pytest

from trl_dam.rewards import math_correctness_reward, math_format_reward

pytest.importorskip("math_verify")

GOLD = "\\frac{3}{4}"
CORRECT = "<reasoning>\n1/2 + 1/4 = 3/4\n</reasoning>\n<answer>\n\\boxed{\\frac{3}{4}}\n</answer>"
EQUIVALENT = "<reasoning>\nIt is 0.75.\n</reasoning>\n<answer>\n\\boxed{0.75}\n</answer>"
WRONG = "<reasoning>\n1/2 + 1/4 = 2/6\n</reasoning>\n<answer>\n\\boxed{\\frac{1}{3}}\n</answer>"
BOXED_ONLY = "The sum is \\boxed{\\dfrac{3}{4}}."
TAGS_ONLY = "<answer>3/4</answer>"
MALFORMED = "I am not sure."


def test_correctness():
    completions = [CORRECT, EQUIVALENT, WRONG, BOXED_ONLY, TAGS_ONLY, MALFORMED]
    rewards = math_correctness_reward(None, completions, answer=[GOLD] * len(completions))
    assert rewards == [2.0, 2.0, 0.0, 2.0, 2.0, 0.0]


def test_gold_given_as_a_full_solution():
    solution = "Adding, we get $\\boxed{\\frac{3}{4}}$."
    assert math_correctness_reward(None, [CORRECT, WRONG], answer=[solution, solution]) == [2.0, 0.0]


def test_format():
    rewards = math_format_reward(None, [CORRECT, WRONG, BOXED_ONLY, TAGS_ONLY, MALFORMED])
    assert rewards == [1.0, 1.0, 0.5, 0.75, 0.25]


def test_conversational_and_log_extra():
    logged = {}
    rewards = math_correctness_reward(
        prompts=None,
        completions=[[{"role": "assistant", "content": CORRECT}]],
        answer=[GOLD],
        log_extra=lambda name, values: logged.update({name: values}),
    )
    assert rewards == [2.0]
    assert logged == {"math_answer": ["\\frac{3}{4}"]}
