"""GSM8K accuracy with d1's evaluation parser."""

import datasets
import evaluate

from trl_dam.metrics._shared import correct_share, metric_info
from trl_dam.tasks.gsm8k import gsm8k_is_correct

_CITATION = """\
@article{cobbe2021gsm8k,
  title={Training Verifiers to Solve Math Word Problems},
  author={Cobbe, Karl and Kosaraju, Vineet and Bavarian, Mohammad and Chen, Mark and Jun, Heewoo and Kaiser, Lukasz and Plappert, Matthias and Tworek, Jerry and Hilton, Jacob and Nakano, Reiichiro and Hesse, Christopher and Schulman, John},
  journal={arXiv preprint arXiv:2110.14168},
  year={2021}
}
"""

_DESCRIPTION = """\
Scores GSM8K completions as d1's evaluation does: the predicted number is the first number of the first \\boxed{}
that contains one, else the last number of the last <answer> block. It is correct if it equals the gold number
(relative tolerance 1e-6; thousands separators ignored).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): completion texts.
    references (`list` of `str`): gold numbers (the text after '####').
Returns:
    accuracy (`float`): fraction of correct completions.
Examples:
    >>> metric = trl_dam.metrics.load_metric("gsm8k_accuracy")
    >>> metric.compute(predictions=["<answer>\\\\boxed{72}</answer>"], references=["72"])
    {'accuracy': 1.0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Gsm8kAccuracy(evaluate.Metric):
    """Accuracy of GSM8K completions."""

    def _info(self):
        """Describe the metric and its inputs."""
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION, references=datasets.Value("string"))

    def _compute(self, predictions, references):
        """Return ``accuracy``."""
        return {
            "accuracy": correct_share(
                gsm8k_is_correct(text, gold) for text, gold in zip(predictions, references, strict=True)
            )
        }
