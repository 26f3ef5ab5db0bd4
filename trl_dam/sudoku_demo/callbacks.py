"""A trainer callback that tracks held-out Sudoku accuracy during fine-tuning (for the training plot)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback

from trl_dam.evaluation import decode_completions

from .evaluation import score_completions

__all__ = ["SudokuAccuracyCallback"]


class SudokuAccuracyCallback(TrainerCallback):
    """Every ``eval_every`` optimizer steps (and before the first), decode held-out puzzles greedily and record the
    blank-cell accuracy and the solved fraction.

    The history is kept in :attr:`history` (``[{"step", "cell_accuracy", "puzzle_accuracy"}]``). Decoding is d1's low-confidence protocol at temperature 0 with a ``budget``-token canvas. The callback needs the
    whole model on the main process: use it in single-process runs (other ranks skip it; under DeepSpeed ZeRO-3 the
    main rank alone could not run the model).

    Args:
        tokenizer: the model's tokenizer.
        rows: held-out rows with ``prompt``, ``puzzle`` and ``solution`` columns (a dict of lists or a Dataset).
        budget: completion length in tokens.
        eval_every: interval in optimizer steps (``0`` turns the callback off).
        block_length: decoder block size (default: the whole canvas).
        chat_template_kwargs: for conversational prompts.
    """

    def __init__(
        self,
        tokenizer,
        rows: dict[str, Sequence] | Any,
        budget: int,
        eval_every: int,
        block_length: int | None = None,
        chat_template_kwargs: dict | None = None,
    ):
        self.tokenizer = tokenizer
        self.rows = {key: list(rows[key]) for key in ("prompt", "puzzle", "solution")}
        self.budget = budget
        self.eval_every = eval_every
        self.block_length = block_length
        self.chat_template_kwargs = chat_template_kwargs
        self.history: list[dict[str, float]] = []
        self.seconds = 0.0

    def _evaluate(self, model, step: int) -> None:
        start = time.perf_counter()
        texts = decode_completions(
            model,
            self.tokenizer,
            self.rows["prompt"],
            self.budget,
            block_length=self.block_length,
            chat_template_kwargs=self.chat_template_kwargs,
        )
        scores = score_completions(texts, self.rows["puzzle"], self.rows["solution"])
        self.history.append({"step": step, **scores.as_dict()})
        self.seconds += time.perf_counter() - start

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.eval_every and state.is_world_process_zero and model is not None:
            self._evaluate(model, state.global_step)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not (self.eval_every and state.is_world_process_zero and model is not None):
            return
        if state.global_step % self.eval_every == 0 or state.global_step == state.max_steps:
            self._evaluate(model, state.global_step)
