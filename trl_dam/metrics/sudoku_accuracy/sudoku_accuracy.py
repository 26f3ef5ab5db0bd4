"""4x4 Sudoku accuracy: d1's blank-cell accuracy and the fraction of puzzles fully solved."""

import datasets
import evaluate

from trl_dam.metrics._shared import D1_CITATION, correct_share, metric_info
from trl_dam.tasks.sudoku import extract_sudoku_grid, score_sudoku_grid, score_sudoku_grid_valid, sudoku_grid_solves

_DESCRIPTION = """\
Scores 4x4 Sudoku completions. The predicted grid is the digits of the last <answer>...</answer> block (or of the
whole completion when it has no answer tag), padded with '0' or truncated to 16 characters.

* cell_accuracy: empty cells filled with the stored solution's digit / empty cells, summed over all puzzles (micro
  average). This is the "Sudoku accuracy" d1 reports.
* valid_cell_accuracy: the same with every solution of the puzzle accepted. Per puzzle, the correct cells are the
  most empty cells the grid shares with any valid grid that keeps the givens, so a grid that is itself a valid
  Sudoku keeping the givens scores all its empty cells. It equals cell_accuracy on puzzles with one solution and is
  never lower; d1's 4x4 test file has puzzles with several solutions, where d1's metric marks a correct
  alternative solution wrong.
* puzzle_accuracy: fraction of puzzles whose predicted grid equals the stored solution.
* valid_puzzle_accuracy: fraction of puzzles whose predicted grid is a valid Sudoku keeping the givens.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): completion texts.
    references (`list` of `str`): 16-character solutions.
    puzzles (`list` of `str`): 16-character puzzles, '0' for empty cells.
Returns:
    cell_accuracy (`float`): fraction of empty cells filled as in the stored solution, over all puzzles (d1's).
    valid_cell_accuracy (`float`): fraction of empty cells filled correctly when any solution is accepted.
    puzzle_accuracy (`float`): fraction of puzzles whose grid is the stored solution.
    valid_puzzle_accuracy (`float`): fraction of puzzles whose grid is any of their solutions.
Examples:
    >>> metric = trl_dam.metrics.load_metric("sudoku_accuracy")
    >>> metric.compute(predictions=["<answer>1234341243212143</answer>"], references=["1234341241232341"],
    ...                puzzles=["1234341240202040"])
    {'cell_accuracy': 0.5, 'valid_cell_accuracy': 1.0, 'puzzle_accuracy': 0.0, 'valid_puzzle_accuracy': 1.0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SudokuAccuracy(evaluate.Metric):
    """Blank-cell accuracy and solved fraction of 4x4 Sudoku completions, against the stored solution (d1's) and
    against any solution of the puzzle."""

    def _info(self):
        """Describe the metric and its inputs."""
        return metric_info(
            _DESCRIPTION,
            _KWARGS_DESCRIPTION,
            D1_CITATION,
            references=datasets.Value("string"),
            puzzles=datasets.Value("string"),
        )

    def _compute(self, predictions, references, puzzles):
        """Return ``cell_accuracy``, ``valid_cell_accuracy``, ``puzzle_accuracy`` and ``valid_puzzle_accuracy``."""
        stored = [0, 0]  # correct cells, empty cells
        valid = [0, 0]
        solved, valid_solved = [], []
        for text, solution, puzzle in zip(predictions, references, puzzles, strict=True):
            grid = extract_sudoku_grid(text)
            for counts, (correct, total) in (
                (stored, score_sudoku_grid(grid, puzzle, solution)),
                (valid, score_sudoku_grid_valid(grid, puzzle)),
            ):
                counts[0] += correct
                counts[1] += total
            solved.append(grid == solution)
            valid_solved.append(sudoku_grid_solves(grid, puzzle))
        return {
            "cell_accuracy": correct_share([stored[0]], stored[1]),
            "valid_cell_accuracy": correct_share([valid[0]], valid[1]),
            "puzzle_accuracy": correct_share(solved),
            "valid_puzzle_accuracy": correct_share(valid_solved),
        }
