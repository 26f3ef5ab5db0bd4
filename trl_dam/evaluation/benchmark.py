"""d1's benchmark protocol: task accuracy at several generation lengths with low-confidence block decoding.

The d1 paper (and the DAM paper after it) report each task at generation lengths 128, 256 and 512, decoding with
LLaDA's low-confidence remasking at temperature 0, in blocks of 32 tokens, with ``length / 2`` denoiser calls (two
tokens per call), from evaluation prompts that differ from the training ones (``prompt_style="d1_eval"``) and with
``"<reasoning>"`` prefilled after the chat template. Scores come from the task metrics shipped as ``evaluate``
modules (:mod:`trl_dam.metrics`):

=========  ============================  ===============================================
task       metric module                 reported score
=========  ============================  ===============================================
sudoku     ``sudoku_accuracy``           ``cell_accuracy``: blank cells filled correctly
countdown  ``countdown_accuracy``        ``accuracy``: valid equations hitting the target
gsm8k      ``gsm8k_accuracy``            ``accuracy``: final number equal to the gold one
math500    ``math500_accuracy``          ``accuracy``: answer equivalent to the gold one
=========  ============================  ===============================================
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets

from trl_dam.evaluation.decoding import decode_completions
from trl_dam.metrics import load_metric
from trl_dam.tasks.answer_format import EVAL_PREFILL

__all__ = [
    "D1_BLOCK_LENGTH",
    "D1_GENERATION_LENGTHS",
    "TASK_EVALUATIONS",
    "LengthResult",
    "TaskEvaluation",
    "check_decoding_settings",
    "evaluate_generation_lengths",
    "format_length_table",
    "load_eval_dataset",
]

#: Generation lengths of d1's (and the DAM paper's) tables.
D1_GENERATION_LENGTHS = (128, 256, 512)
#: Block size of d1's low-confidence decoding.
D1_BLOCK_LENGTH = 32


@dataclass(frozen=True)
class TaskEvaluation:
    """How a task is scored: its metric module, the score a table reports, and the dataset columns the metric needs.

    Attributes:
        metric: name of the metric module (:data:`trl_dam.metrics.METRIC_NAMES`).
        main_score: key of the metric's output quoted in tables.
        metric_columns: ``{metric argument: dataset column}``, besides ``predictions``.
    """

    metric: str
    main_score: str
    metric_columns: dict[str, str]


TASK_EVALUATIONS: dict[str, TaskEvaluation] = {
    "sudoku": TaskEvaluation("sudoku_accuracy", "cell_accuracy", {"references": "solution", "puzzles": "puzzle"}),
    "countdown": TaskEvaluation("countdown_accuracy", "accuracy", {"references": "target", "numbers": "numbers"}),
    "gsm8k": TaskEvaluation("gsm8k_accuracy", "accuracy", {"references": "answer"}),
    "math500": TaskEvaluation("math500_accuracy", "accuracy", {"references": "answer"}),
}


def _check_task(task: str) -> TaskEvaluation:
    if task not in TASK_EVALUATIONS:
        raise ValueError(f"Unknown task {task!r}; expected one of {tuple(TASK_EVALUATIONS)}.")
    return TASK_EVALUATIONS[task]


def load_eval_dataset(
    task: str,
    num_problems: int | None = None,
    *,
    prompt_style: str = "d1_eval",
    seed: int = 1,
    dataset_name: str | None = None,
    split: str = "test",
) -> datasets.Dataset:
    """The evaluation set of a task, with the columns its metric needs.

    Sudoku and Countdown are generated (the default) or read from a fixed set in d1's layout with ``dataset_name``:
    d1's ``4x4_test_sudoku.csv`` (columns ``Puzzle``, ``Solution``; :func:`trl_dam.tasks.load_sudoku`) or
    ``countdown_cd3_test.jsonl`` (``{"input": "30,100,93", "output": "23"}`` rows; :func:`trl_dam.tasks.load_countdown`),
    or a hub dataset with those columns.

    Args:
        task: ``"sudoku"``, ``"countdown"``, ``"gsm8k"`` or ``"math500"``.
        num_problems: generated tasks: how many problems to generate (default 256, as d1); loaded sets: keep the
            first ``num_problems`` rows (default: all, e.g. 1319 for GSM8K and 500 for MATH500).
        prompt_style: ``"d1_eval"`` (d1's evaluation prompts), ``"d1"`` (its training prompts) or ``"compact"``
            (the tiny Sudoku/Countdown format).
        seed: seed of the generated problems; the test split never shares a Sudoku solution grid or a Countdown
            problem with the training split. ``1`` gives the held-out puzzles of ``examples/sudoku.py``.
        dataset_name: a hub id, a local folder or a data file (``.csv``, ``.json``, ``.jsonl``, ``.parquet``).
            Default: generated problems for Sudoku/Countdown, the hub dataset for GSM8K/MATH500.
        split: split of a loaded dataset (a data file is read as this split).
    """
    from trl_dam import tasks

    _check_task(task)
    if task in ("sudoku", "countdown") and dataset_name is None:
        generate = tasks.generate_sudoku_dataset if task == "sudoku" else tasks.generate_countdown_dataset
        return generate(num_problems or 256, seed=seed, split="test", prompt_style=prompt_style)
    source: dict[str, Any] = {}
    if dataset_name is not None and os.path.isfile(dataset_name):
        source = {"path": dataset_name, "name": None, "data_files": dataset_name}
    elif dataset_name is not None:
        source = {"path": dataset_name}
    load = {
        "sudoku": tasks.load_sudoku,
        "countdown": tasks.load_countdown,
        "gsm8k": tasks.load_gsm8k,
        "math500": tasks.load_math500,
    }[task]
    dataset = load(split=split, prompt_style=prompt_style, **source)
    if num_problems is not None and num_problems < len(dataset):
        dataset = dataset.select(range(num_problems))
    return dataset


@dataclass
class LengthResult:
    """Scores of one task at one generation length.

    Attributes:
        scores: the metric's output (e.g. ``{"cell_accuracy": ..., "puzzle_accuracy": ...}``).
        main_score: the score a table reports.
        completions: the decoded completion texts, in dataset order.
        seconds: wall time of decoding and scoring.
    """

    scores: dict[str, float]
    main_score: float
    completions: list[str] = field(repr=False)
    seconds: float


def check_decoding_settings(
    lengths: Sequence[int], *, block_length: int, tokens_per_step: int, batch_size: int
) -> None:
    """Raise a ValueError naming the setting, before any model is loaded or decoded, when a length cannot be decoded
    with d1's protocol (see :func:`evaluate_generation_lengths`) or a count is below 1."""
    for name, value in (
        ("block_length", block_length),
        ("tokens_per_step", tokens_per_step),
        ("batch_size", batch_size),
    ):
        if value < 1:
            raise ValueError(f"`{name}` must be >= 1, got {value}.")
    if not lengths:
        raise ValueError("`generation_lengths` is empty: give at least one completion length.")
    for length in lengths:
        if length < 1:
            raise ValueError(f"`generation_lengths` must be >= 1 tokens each, got {length}.")
        block = min(block_length, length)
        if length % block:
            raise ValueError(f"Generation length {length} is not a multiple of the block length {block_length}.")
        steps = max(1, length // tokens_per_step)
        if steps % (length // block):
            raise ValueError(
                f"{steps} denoiser calls ({length} tokens / {tokens_per_step} per call) do not split evenly over "
                f"{length // block} blocks of {block} tokens."
            )


def evaluate_generation_lengths(
    model,
    tokenizer,
    task: str,
    dataset: datasets.Dataset | dict[str, Sequence],
    lengths: Sequence[int] = D1_GENERATION_LENGTHS,
    *,
    block_length: int = D1_BLOCK_LENGTH,
    tokens_per_step: int = 2,
    prefill: str | None = None,
    batch_size: int = 8,
    disable_adapter: bool = False,
    chat_template_kwargs: dict | None = None,
    accelerator=None,
    progress: Callable[[str], None] | None = None,
) -> dict[int, LengthResult]:
    """Decode ``dataset`` at every generation length with d1's protocol and score it with the task metric.

    Each length ``L`` decodes with low-confidence remasking at temperature 0, blocks of ``block_length`` tokens and
    ``L / tokens_per_step`` denoiser calls (d1: ``L / 2``). ``L`` must be a multiple of ``block_length`` (a shorter
    ``L`` is one block) and ``L / tokens_per_step`` a multiple of the number of blocks.

    Args:
        model: the denoiser (a PEFT model is decoded through its adapters unless ``disable_adapter``).
        tokenizer: its tokenizer.
        task: a key of :data:`TASK_EVALUATIONS`.
        dataset: rows with ``prompt`` and the metric's columns (:func:`load_eval_dataset` builds them).
        prefill: text forced at the start of every completion; ``None``: d1's ``"<reasoning>"`` for conversational
            prompts, nothing for plain-text ones.
        batch_size: sequences per decoder call.
        accelerator: an ``Accelerator`` / ``PartialState``: each process decodes a shard and the texts are gathered.
        progress: called with a one-line message after each length.

    Returns:
        ``{length: LengthResult}``.
    """
    evaluation = _check_task(task)
    prompts = list(dataset["prompt"])
    if prefill is None:
        prefill = EVAL_PREFILL if isinstance(prompts[0], list) else ""
    missing = [column for column in evaluation.metric_columns.values() if column not in _column_names(dataset)]
    if missing:
        raise ValueError(f"The {task} evaluation set lacks the column(s) {missing} its metric needs.")
    metric = load_metric(evaluation.metric)
    metric_inputs = {arg: list(dataset[column]) for arg, column in evaluation.metric_columns.items()}
    check_decoding_settings(lengths, block_length=block_length, tokens_per_step=tokens_per_step, batch_size=batch_size)
    results: dict[int, LengthResult] = {}
    for length in lengths:
        block = min(block_length, length)
        steps = max(1, length // tokens_per_step)
        start = time.perf_counter()
        texts = decode_completions(
            model,
            tokenizer,
            prompts,
            length,
            decoder="low_confidence",
            block_length=block,
            steps=steps,
            batch_size=batch_size,
            disable_adapter=disable_adapter,
            chat_template_kwargs=chat_template_kwargs,
            prefill=prefill,
            accelerator=accelerator,
        )
        scores = metric.compute(predictions=texts, **metric_inputs)
        results[length] = LengthResult(
            scores={k: float(v) for k, v in scores.items()},
            main_score=float(scores[evaluation.main_score]),
            completions=texts,
            seconds=time.perf_counter() - start,
        )
        if progress is not None:
            progress(f"{task} @ {length} tokens: {evaluation.main_score} {100 * results[length].main_score:.1f}%")
    return results


def _column_names(dataset) -> list[str]:
    return list(dataset.column_names) if hasattr(dataset, "column_names") else list(dataset)


def format_length_table(results: dict[str, dict[str, dict[int, LengthResult]]]) -> str:
    """The paper's table shape: one row per model, one column group per task with one column per length (score %).

    Args:
        results: ``{model label: {task: {length: LengthResult}}}``; a cell a model lacks prints ``-``.
    """
    task_lengths: dict[str, list[int]] = {}
    for per_task in results.values():
        for task, per_length in per_task.items():
            known = task_lengths.setdefault(task, [])
            known += [length for length in per_length if length not in known]
    col = 7
    label_width = max(12, *(len(label) + 2 for label in results))
    header_tasks = " " * label_width + "".join(
        f"  {task:<{col * len(lengths)}}" for task, lengths in task_lengths.items()
    )
    header_lengths = "length".ljust(label_width) + "".join(
        "  " + "".join(f"{length:>{col}}" for length in lengths) for lengths in task_lengths.values()
    )
    lines = [header_tasks.rstrip(), header_lengths, "-" * len(header_lengths)]
    for label, per_task in results.items():
        cells = []
        for task, lengths in task_lengths.items():
            per_length = per_task.get(task, {})
            cells.append(
                "  "
                + "".join(
                    f"{100 * per_length[length].main_score:>{col}.1f}" if length in per_length else f"{'-':>{col}}"
                    for length in lengths
                )
            )
        lines.append(label.ljust(label_width) + "".join(cells))
    legend = ", ".join(f"{task}: {TASK_EVALUATIONS[task].main_score}" for task in task_lengths)
    lines.append(f"(scores in %; {legend})")
    return "\n".join(lines)
