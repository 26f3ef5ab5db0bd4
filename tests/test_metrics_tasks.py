"""Task metrics, loaded offline through `evaluate.load` on the local modules shipped in `trl_dam.metrics`."""

import evaluate
import pytest

from trl_dam.metrics import METRIC_NAMES, load_metric, metric_path

SOLUTION = "1234341221434321"
PUZZLE = "1030001221004300"  # 8 blanks
HALF_RIGHT = "1234341221344312"  # 4 of the 8 blanks right


def test_metric_paths_are_local_modules():
    for name in METRIC_NAMES:
        module = evaluate.load(metric_path(name), keep_in_memory=True)
        assert isinstance(module, evaluate.Metric)
        assert module.name == name
    with pytest.raises(ValueError):
        metric_path("bleu")


def test_sudoku_accuracy():
    metric = load_metric("sudoku_accuracy", keep_in_memory=True)
    predictions = [
        f"<reasoning>\nr\n</reasoning>\n<answer>\n{SOLUTION}\n</answer>",  # 8/8, solved
        f"<answer>{HALF_RIGHT}</answer>",  # 4/8
        "no idea",  # 0/8
        SOLUTION,  # compact, 8/8, solved
    ]
    result = metric.compute(predictions=predictions, references=[SOLUTION] * 4, puzzles=[PUZZLE] * 4)
    assert result == {"cell_accuracy": 20 / 32, "puzzle_accuracy": 0.5}


def test_sudoku_accuracy_is_micro_averaged_over_cells():
    metric = load_metric("sudoku_accuracy", keep_in_memory=True)
    four_blanks = "1234341221434300"[:12] + "0000"  # last row blank: 4 empty cells
    result = metric.compute(
        predictions=[HALF_RIGHT, SOLUTION], references=[SOLUTION, SOLUTION], puzzles=[PUZZLE, four_blanks]
    )
    assert result["cell_accuracy"] == (4 + 4) / (8 + 4)
    assert result["puzzle_accuracy"] == 0.5


def test_sudoku_accuracy_with_add_batch():
    metric = load_metric("sudoku_accuracy", keep_in_memory=True)
    metric.add_batch(predictions=[SOLUTION], references=[SOLUTION], puzzles=[PUZZLE])
    metric.add_batch(predictions=[HALF_RIGHT], references=[SOLUTION], puzzles=[PUZZLE])
    assert metric.compute() == {"cell_accuracy": 0.75, "puzzle_accuracy": 0.5}


def test_countdown_accuracy():
    metric = load_metric("countdown_accuracy", keep_in_memory=True)
    result = metric.compute(
        predictions=[
            "<reasoning>\nr\n</reasoning>\n<answer>\n\\boxed{44 + 19 + 35}\n</answer>",
            "\\boxed{44 \\times 2}",
            "<answer>44 - 19 + 35</answer>",
            "nothing",
        ],
        references=[98, 88, 98, 98],
        numbers=[[44, 19, 35], [44, 2], [44, 19, 35], [44, 19, 35]],
    )
    assert result == {"accuracy": 0.5}


def test_gsm8k_accuracy():
    metric = load_metric("gsm8k_accuracy", keep_in_memory=True)
    result = metric.compute(
        predictions=[
            "<reasoning>\n3+4=7\n</reasoning>\n<answer>\n\\boxed{7}\n</answer>",
            "<answer>\nThe total is 1,000 dollars\n</answer>",
            "<answer>\\boxed{8}</answer>",
            "It is 7",
        ],
        references=["7", "1000", "7", "7"],
    )
    assert result == {"accuracy": 0.5}


def test_math500_accuracy():
    pytest.importorskip("math_verify")
    metric = load_metric("math500_accuracy", keep_in_memory=True)
    result = metric.compute(
        predictions=[
            "<answer>\n\\boxed{\\dfrac{3}{4}}\n</answer>",
            "so \\boxed{\\left(3, \\frac{\\pi}{2}\\right)}",
            "\\boxed{\\frac{1}{3}}",
            "no answer",
            "<answer>0.75</answer>",
        ],
        references=["\\frac{3}{4}", "(3, \\frac{\\pi}{2})", "\\frac{3}{4}", "1", "\\frac{3}{4}"],
    )
    assert result == {"accuracy": 0.6}
