"""4x4 Sudoku accuracy: d1's blank-cell accuracy and the fraction of puzzles fully solved."""

import datasets
import evaluate

from trl_dam.tasks.sudoku import extract_sudoku_grid, score_sudoku_grid

_CITATION = """\
@article{zhao2025d1,
  title={d1: Scaling Reasoning in Diffusion Large Language Models via Reinforcement Learning},
  author={Zhao, Siyan and Gupta, Devaansh and Zheng, Qinqing and Grover, Aditya},
  journal={arXiv preprint arXiv:2504.12216},
  year={2025}
}
"""

_DESCRIPTION = """\
Scores 4x4 Sudoku completions. The predicted grid is the digits of the last <answer>...</answer> block (or of the
whole completion when it has no answer tag), padded with '0' or truncated to 16 characters.

* cell_accuracy: correctly filled empty cells / empty cells, summed over all puzzles (micro average). This is
  the "Sudoku accuracy" d1 reports.
* puzzle_accuracy: fraction of puzzles whose predicted grid equals the solution in every cell.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): completion texts.
    references (`list` of `str`): 16-character solutions.
    puzzles (`list` of `str`): 16-character puzzles, '0' for empty cells.
Returns:
    cell_accuracy (`float`): fraction of empty cells filled correctly, over all puzzles.
    puzzle_accuracy (`float`): fraction of puzzles fully solved.
Examples:
    >>> metric = trl_dam.metrics.load_metric("sudoku_accuracy")
    >>> metric.compute(predictions=["<answer>1234341221434321</answer>"], references=["1234341221434321"],
    ...                puzzles=["1030001221004300"])
    {'cell_accuracy': 1.0, 'puzzle_accuracy': 1.0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SudokuAccuracy(evaluate.Metric):
    """Blank-cell accuracy and solved fraction of 4x4 Sudoku completions."""

    def _info(self):
        """Describe the metric and its inputs."""
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Value("string"),
                    "puzzles": datasets.Value("string"),
                }
            ),
        )

    def _compute(self, predictions, references, puzzles):
        """Return ``cell_accuracy`` and ``puzzle_accuracy``."""
        correct_cells = total_cells = solved = 0
        for text, solution, puzzle in zip(predictions, references, puzzles, strict=True):
            grid = extract_sudoku_grid(text)
            correct, total = score_sudoku_grid(grid, puzzle, solution)
            correct_cells += correct
            total_cells += total
            solved += grid == solution
        return {
            "cell_accuracy": correct_cells / total_cells if total_cells else 0.0,
            "puzzle_accuracy": solved / len(predictions) if predictions else 0.0,
        }
