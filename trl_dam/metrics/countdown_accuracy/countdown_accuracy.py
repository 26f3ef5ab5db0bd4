"""Countdown accuracy: fraction of completions whose expression uses every number once and hits the target."""

import datasets
import evaluate

from trl_dam.metrics._shared import D1_CITATION, correct_share, metric_info
from trl_dam.tasks.countdown import countdown_is_correct

_DESCRIPTION = """\
Scores Countdown completions as d1's evaluation does. The expression is read from the last <answer> block (or the
last \\boxed{} inside it), else from the last \\boxed{}, else from the whole completion; LaTeX operators are
normalised and an "= N" suffix is dropped. A completion is correct if the expression contains only integer
literals, + - * / and parentheses, uses each given number exactly once, and its exact value equals the target.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): completion texts.
    references (`list` of `int`): targets.
    numbers (`list` of `list` of `int`): the numbers of each problem.
Returns:
    accuracy (`float`): fraction of correct completions.
Examples:
    >>> metric = trl_dam.metrics.load_metric("countdown_accuracy")
    >>> metric.compute(predictions=["<answer>2*4-3</answer>"], references=[5], numbers=[[2, 3, 4]])
    {'accuracy': 1.0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CountdownAccuracy(evaluate.Metric):
    """Accuracy of Countdown completions."""

    def _info(self):
        """Describe the metric and its inputs."""
        return metric_info(
            _DESCRIPTION,
            _KWARGS_DESCRIPTION,
            D1_CITATION,
            references=datasets.Value("int64"),
            numbers=datasets.Sequence(datasets.Value("int64")),
        )

    def _compute(self, predictions, references, numbers):
        """Return ``accuracy``."""
        return {
            "accuracy": correct_share(
                countdown_is_correct(text, numbers_, target)
                for text, target, numbers_ in zip(predictions, references, numbers, strict=True)
            )
        }
