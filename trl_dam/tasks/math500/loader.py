"""Load MATH500 (``HuggingFaceH4/MATH-500``) or d1's MATH training set (``ankner/math-500``) as a prompt dataset."""

from __future__ import annotations

import datasets

from trl_dam.tasks.loading import DataFiles, load_split
from trl_dam.tasks.math500.answers import extract_math_gold
from trl_dam.tasks.math500.prompts import build_math_prompt

__all__ = ["MATH500_HUB_ID", "MATH_TRAIN_HUB_ID", "load_math500"]

MATH500_HUB_ID = "HuggingFaceH4/MATH-500"
"""The 500 evaluation problems (split ``test``), with ``problem``, ``solution`` and ``answer`` columns."""

MATH_TRAIN_HUB_ID = "ankner/math-500"
"""d1's MATH training source (split ``train``; MATH problems outside MATH500)."""


def load_math500(
    split: str = "test",
    path: str = MATH500_HUB_ID,
    name: str | None = None,
    data_files: DataFiles | None = None,
    prompt_style: str = "d1",
    conversational: bool = True,
    **load_kwargs,
) -> datasets.Dataset:
    """Load a MATH split and add the prompt and the gold final answer.

    For d1's setup, evaluate on ``load_math500("test", prompt_style="d1_eval")`` and train on
    ``load_math500("train", path=MATH_TRAIN_HUB_ID)``.

    Args:
        split: Split to load (``"test"`` for MATH500, ``"train"`` for ``ankner/math-500``).
        path: Hub id, local folder, or packaged builder name (``"parquet"``, ``"json"``) when ``data_files`` is
            given; see :func:`trl_dam.tasks.loading.load_split`.
        name: Hub configuration, if any; ignored with ``data_files``.
        data_files: Local files with a ``problem`` column and an ``answer`` and/or ``solution`` column.
        prompt_style: ``"d1"`` (training prompt) or ``"d1_eval"`` (evaluation prompt).
        conversational: One-message conversational prompts (``True``) or plain strings.
        **load_kwargs: Passed on to ``datasets.load_dataset``.

    Returns:
        The split with the original columns plus ``prompt`` and ``answer`` (the gold final answer: the
        ``answer`` column if present, else the last ``\\boxed{}`` of ``solution``).
    """
    dataset = load_split(path, split, name=name, data_files=data_files, **load_kwargs)

    def to_example(example: dict) -> dict:
        return {
            "prompt": build_math_prompt(example["problem"], prompt_style, conversational),
            "answer": extract_math_gold(example),
        }

    return dataset.map(to_example)
