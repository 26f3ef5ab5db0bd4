"""Load GSM8K (``openai/gsm8k``, configuration ``main``) as a TRL prompt dataset."""

from __future__ import annotations

import datasets

from trl_dam.tasks.gsm8k.answers import extract_gsm8k_gold
from trl_dam.tasks.gsm8k.prompts import build_gsm8k_prompt
from trl_dam.tasks.loading import DataFiles, load_split

__all__ = ["GSM8K_HUB_ID", "load_gsm8k"]

GSM8K_HUB_ID = "openai/gsm8k"


def load_gsm8k(
    split: str = "train",
    path: str = GSM8K_HUB_ID,
    name: str | None = "main",
    data_files: DataFiles | None = None,
    prompt_style: str = "d1",
    conversational: bool = True,
    **load_kwargs,
) -> datasets.Dataset:
    """Load a GSM8K split and add the prompt and the gold number.

    d1 trains on the ``train`` split (7473 problems) and evaluates on the whole ``test`` split (1319).

    Args:
        split: ``"train"`` or ``"test"``.
        path: Hub id, local folder, or packaged builder name (``"parquet"``, ``"json"``) when ``data_files`` is
            given; see :func:`trl_dam.tasks.loading.load_split`.
        name: Hub configuration (``"main"``); ignored with ``data_files``.
        data_files: Local files with GSM8K's ``question`` and ``answer`` columns.
        prompt_style: ``"d1"`` (training prompt) or ``"d1_eval"`` (evaluation prompt).
        conversational: One-message conversational prompts (``True``) or plain strings.
        **load_kwargs: Passed on to ``datasets.load_dataset``.

    Returns:
        The split with columns ``prompt``, ``question``, ``answer`` (the gold number as a string, e.g.
        ``"72"``) and ``solution`` (the original worked answer ending in ``#### 72``).
    """
    dataset = load_split(path, split, name=name, data_files=data_files, **load_kwargs)

    def to_example(example: dict) -> dict:
        return {
            "prompt": build_gsm8k_prompt(example["question"], prompt_style, conversational),
            "solution": example["answer"],
            "answer": extract_gsm8k_gold(example["answer"]),
        }

    return dataset.map(to_example)
