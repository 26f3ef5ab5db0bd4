"""Task metrics, loaded offline through `evaluate.load` on the local modules shipped in `trl_dam.metrics`."""

import evaluate
import pytest
from sudoku_alternatives import THREE_SOLUTION_PUZZLE, THREE_SOLUTIONS, TWO_SOLUTION_PUZZLE, TWO_SOLUTIONS

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
    # one solution: the validity-aware scores equal d1's
    assert result == {
        "cell_accuracy": 20 / 32,
        "valid_cell_accuracy": 20 / 32,
        "puzzle_accuracy": 0.5,
        "valid_puzzle_accuracy": 0.5,
    }


def test_sudoku_accuracy_on_puzzles_with_two_and_three_solutions():
    """d1's accuracy compares with the one stored solution; the validity-aware one accepts every solution."""
    metric = load_metric("sudoku_accuracy", keep_in_memory=True)
    two_stored, two_other = TWO_SOLUTIONS
    three_first, three_stored, three_third = THREE_SOLUTIONS
    rows = [  # (prediction, stored solution, puzzle): d1's correct cells, validity-aware correct cells, of total
        (two_other, two_stored, TWO_SOLUTION_PUZZLE),  # 0, 4 of 4: the other solution differs in every empty cell
        (two_stored, two_stored, TWO_SOLUTION_PUZZLE),  # 4, 4 of 4
        (three_first, three_stored, THREE_SOLUTION_PUZZLE),  # 4, 8 of 8
        (three_third, three_stored, THREE_SOLUTION_PUZZLE),  # 1, 8 of 8
        (three_third[:15] + "4", three_stored, THREE_SOLUTION_PUZZLE),  # 1, 7 of 8: not a Sudoku, 7 cells of one
    ]
    predictions, references, puzzles = (list(column) for column in zip(*rows))
    result = metric.compute(predictions=predictions, references=references, puzzles=puzzles)
    assert result == {
        "cell_accuracy": (0 + 4 + 4 + 1 + 1) / 32,
        "valid_cell_accuracy": (4 + 4 + 8 + 8 + 7) / 32,
        "puzzle_accuracy": 1 / 5,
        "valid_puzzle_accuracy": 4 / 5,
    }


def test_sudoku_accuracy_is_micro_averaged_over_cells():
    metric = load_metric("sudoku_accuracy", keep_in_memory=True)
    four_blanks = "1234341221434300"[:12] + "0000"  # last row blank: 4 empty cells
    result = metric.compute(
        predictions=[HALF_RIGHT, SOLUTION], references=[SOLUTION, SOLUTION], puzzles=[PUZZLE, four_blanks]
    )
    assert result["cell_accuracy"] == result["valid_cell_accuracy"] == (4 + 4) / (8 + 4)
    assert result["puzzle_accuracy"] == result["valid_puzzle_accuracy"] == 0.5


def test_sudoku_accuracy_with_add_batch():
    metric = load_metric("sudoku_accuracy", keep_in_memory=True)
    metric.add_batch(predictions=[SOLUTION], references=[SOLUTION], puzzles=[PUZZLE])
    metric.add_batch(predictions=[HALF_RIGHT], references=[SOLUTION], puzzles=[PUZZLE])
    assert metric.compute() == {
        "cell_accuracy": 0.75,
        "valid_cell_accuracy": 0.75,
        "puzzle_accuracy": 0.5,
        "valid_puzzle_accuracy": 0.5,
    }


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
