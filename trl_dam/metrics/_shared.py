"""What the four metric scripts of :mod:`trl_dam.metrics` share: d1's citation, the ``MetricInfo`` they declare and
the share of correct items they report.

``evaluate.load`` copies each ``<name>/<name>.py`` script into its module cache and imports it from there, so the
scripts cannot import their neighbours relatively; they import this module by its absolute name (``trl_dam`` is
installed wherever the metrics are). Only functions and constants live here: ``evaluate`` takes the first
``EvaluationModule`` subclass it finds in a script's namespace as the metric, so a shared base class imported into
a script would be taken instead of the script's own class.
"""

from __future__ import annotations

from collections.abc import Iterable

import datasets
import evaluate

__all__ = ["D1_CITATION", "correct_share", "metric_info"]

D1_CITATION = """\
@article{zhao2025d1,
  title={d1: Scaling Reasoning in Diffusion Large Language Models via Reinforcement Learning},
  author={Zhao, Siyan and Gupta, Devaansh and Zheng, Qinqing and Grover, Aditya},
  journal={arXiv preprint arXiv:2504.12216},
  year={2025}
}
"""


def metric_info(
    description: str, inputs_description: str, citation: str, **input_features: datasets.Value | datasets.Sequence
) -> evaluate.MetricInfo:
    """The ``MetricInfo`` of a task metric: string ``predictions`` (the completion texts) plus ``input_features``
    (``references`` and any per-problem column, e.g. ``puzzles=datasets.Value("string")``)."""
    return evaluate.MetricInfo(
        description=description,
        citation=citation,
        inputs_description=inputs_description,
        features=datasets.Features({"predictions": datasets.Value("string"), **input_features}),
    )


def correct_share(correct: Iterable[bool | int], total: int | None = None) -> float:
    """``sum(correct) / total`` (``total`` defaults to the number of items), and ``0.0`` when there is nothing to
    count, so that an empty evaluation scores zero instead of dividing by zero."""
    correct = list(correct)
    total = len(correct) if total is None else total
    return sum(correct) / total if total else 0.0
