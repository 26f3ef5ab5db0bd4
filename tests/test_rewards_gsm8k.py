"""GSM8K rewards (d1's five functions) on correct, wrong and malformed completions."""

import pytest

from trl_dam.rewards import get_reward_funcs, gsm8k_correctness_reward, gsm8k_integer_reward

CORRECT = "<reasoning>\nTom has 3 + 4 = 7 apples.\n</reasoning>\n<answer>\n7\n</answer>\n"
MULTILINE = "<reasoning>\nHe starts with 3.\nHe buys 4.\n</reasoning>\n<answer>\n7\n</answer>"
WRONG = "<reasoning>\n3 + 4 = 8\n</reasoning>\n<answer>\n8\n</answer>\n"
MALFORMED = "Tom has 7 apples."


def _total(text, gold="7"):
    return sum(func(None, [text], answer=[gold])[0] for func in get_reward_funcs("gsm8k"))


def test_correctness():
    completions = [CORRECT, WRONG, MALFORMED, "<answer>\n7 apples\n</answer>", "<answer>\\boxed{7}</answer>"]
    assert gsm8k_correctness_reward(None, completions, answer=["7"] * 5) == [2.0, 0.0, 0.0, 0.0, 2.0]


def test_correctness_normalises_numbers():
    completions = ["<answer>\n$1,000\n</answer>", "<answer>1000.0</answer>", "<answer>-3</answer>"]
    assert gsm8k_correctness_reward(None, completions, answer=["1000", "1000", "-3"]) == [2.0, 2.0, 2.0]


def test_integer():
    completions = [CORRECT, "<answer>7.5</answer>", "<answer>-4</answer>", "<answer>seven</answer>", "7"]
    assert gsm8k_integer_reward(None, completions) == [0.5, 0.0, 0.5, 0.0, 0.0]


def test_totals():
    assert _total(CORRECT) == 4.0  # 0.5 xml + 0.5 soft + 0.5 strict + 0.5 integer + 2.0 correct
    assert _total(MULTILINE) == 4.0  # multi-line reasoning keeps the format rewards (d1 gave 0 here)
    assert _total(WRONG) == 2.0
    assert _total(MALFORMED) == 0.0
    # 15 characters after </answer>: strict format lost (-0.5) and xml count -0.015
    assert _total(CORRECT.rstrip() + " Hope this helps") == pytest.approx(4.0 - 0.5 - 0.015)


def test_conversational():
    completions = [[{"role": "assistant", "content": CORRECT}]]
    assert gsm8k_correctness_reward(prompts=None, completions=completions, answer=["7"], trainer_state=None) == [2.0]
