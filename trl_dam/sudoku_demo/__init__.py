"""Reusable parts of the embedded Sudoku demo (`examples/sudoku.py`).

* :mod:`.model`: a character tokenizer for the compact Sudoku format and a tiny BERT-style masked LM;
* :mod:`.teachers` and :mod:`.pretrain`: pre-training of an imperfect base on a partly corrupted corpus;
* :mod:`.evaluation`: held-out accuracy at several completion budgets (decoded with :mod:`trl_dam.evaluation`:
  d1's greedy low-confidence protocol and exact CTMC samples) and the importance-sampling estimate of the accuracy
  of the optimum p*;
* :mod:`.callbacks` and :mod:`.plotting`: accuracy during training and the training figure.
"""

from .callbacks import SudokuAccuracyCallback
from .evaluation import (
    OptimumEstimate,
    SudokuScores,
    estimate_optimum_accuracy,
    evaluate_budgets,
    format_results_table,
    score_completions,
    snis_mean,
    total_rewards,
)
from .model import SUDOKU_ALPHABET, SUDOKU_PROMPT_PREFIX, build_sudoku_model, build_sudoku_tokenizer
from .plotting import plot_training, training_figure
from .pretrain import PretrainConfig, PretrainResult, encode_digits, pretrain_base
from .teachers import CORRUPTIONS, random_fill, row_heuristic_fill, teacher_answer

__all__ = [
    "CORRUPTIONS",
    "SUDOKU_ALPHABET",
    "SUDOKU_PROMPT_PREFIX",
    "OptimumEstimate",
    "PretrainConfig",
    "PretrainResult",
    "SudokuAccuracyCallback",
    "SudokuScores",
    "build_sudoku_model",
    "build_sudoku_tokenizer",
    "encode_digits",
    "estimate_optimum_accuracy",
    "evaluate_budgets",
    "format_results_table",
    "plot_training",
    "training_figure",
    "pretrain_base",
    "random_fill",
    "row_heuristic_fill",
    "score_completions",
    "snis_mean",
    "teacher_answer",
    "total_rewards",
]
