"""MATH500 accuracy: last boxed answer checked against the gold answer with math-verify."""

import datasets
import evaluate

from trl_dam.metrics._shared import correct_share, metric_info
from trl_dam.tasks.math500 import extract_math_answer, math_answers_match

_CITATION = """\
@article{hendrycks2021math,
  title={Measuring Mathematical Problem Solving With the MATH Dataset},
  author={Hendrycks, Dan and Burns, Collin and Kadavath, Saurav and Arora, Akul and Basart, Steven and Tang, Eric and Song, Dawn and Steinhardt, Jacob},
  journal={arXiv preprint arXiv:2103.03874},
  year={2021}
}
"""

_DESCRIPTION = """\
Scores MATH / MATH500 completions. The predicted answer is the content of the last \\boxed{} (nested braces
handled), else the last <answer> block; it is correct if math-verify finds it equivalent to the gold answer.
d1 compared answers with Hendrycks' string normalisation instead, so numbers can differ slightly from d1's.
Needs `pip install math-verify`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): completion texts.
    references (`list` of `str`): gold final answers (MATH500's `answer` column).
Returns:
    accuracy (`float`): fraction of correct completions.
Examples:
    >>> metric = trl_dam.metrics.load_metric("math500_accuracy")
    >>> metric.compute(predictions=["so \\\\boxed{\\\\frac{1}{2}}"], references=["0.5"])
    {'accuracy': 1.0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Math500Accuracy(evaluate.Metric):
    """Accuracy of MATH completions, with math-verify equivalence."""

    def _info(self):
        """Describe the metric and its inputs."""
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION, references=datasets.Value("string"))

    def _compute(self, predictions, references):
        """Return ``accuracy``."""
        return {
            "accuracy": correct_share(
                math_answers_match(extract_math_answer(text), gold)
                for text, gold in zip(predictions, references, strict=True)
            )
        }
