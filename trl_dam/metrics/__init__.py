"""Task metrics shipped as local `evaluate` modules, loaded offline with ``evaluate.load(<local path>)``.

Each metric lives in ``trl_dam/metrics/<name>/<name>.py`` (an ``evaluate.Metric`` subclass; what the four share is
in ``trl_dam/metrics/_shared.py``):

* ``sudoku_accuracy``: ``cell_accuracy`` (d1's Sudoku accuracy, against the stored solution), ``valid_cell_accuracy``
  (any solution of the puzzle accepted), ``puzzle_accuracy`` and ``valid_puzzle_accuracy`` (fully solved);
* ``countdown_accuracy``, ``gsm8k_accuracy``, ``math500_accuracy``: ``accuracy``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["METRIC_NAMES", "load_metric", "metric_path"]

METRIC_NAMES = ("sudoku_accuracy", "countdown_accuracy", "gsm8k_accuracy", "math500_accuracy")

_METRICS_DIR = Path(__file__).resolve().parent


def metric_path(name: str) -> str:
    """Return the local path of a metric module folder, for ``evaluate.load(path)``.

    Raises:
        ValueError: If ``name`` is not one of :data:`METRIC_NAMES`.
    """
    if name not in METRIC_NAMES:
        raise ValueError(f"Unknown metric {name!r}; expected one of {METRIC_NAMES}.")
    return str(_METRICS_DIR / name)


def load_metric(name: str, **kwargs: Any):
    """Load a task metric with ``evaluate.load`` from its local module (no network access).

    Args:
        name: One of :data:`METRIC_NAMES`.
        **kwargs: Passed on to ``evaluate.load`` (``keep_in_memory``, ``experiment_id``, ``num_process`` ...).

    Returns:
        The ``evaluate.EvaluationModule``; call ``.compute(predictions=..., references=..., ...)`` on it.
    """
    import evaluate

    return evaluate.load(metric_path(name), **kwargs)
