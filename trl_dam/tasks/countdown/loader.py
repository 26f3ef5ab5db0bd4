"""Load a fixed Countdown set (d1's test file, or a hub dataset) as a TRL prompt dataset.

Two layouts are read, one row per problem:

* d1's test file (JSON lines): ``{"input": "30,100,93", "output": "23"}``, the numbers comma-separated in
  ``input`` and the target in ``output``;
* the hub layout of the Countdown training data d1 draws from: ``nums`` (a list of ints) and ``target``; our own
  ``numbers`` and ``target`` are read too.
"""

from __future__ import annotations

import datasets

from trl_dam.tasks.countdown.prompts import build_countdown_prompt
from trl_dam.tasks.loading import DataFiles, load_split

__all__ = ["COUNTDOWN_FILE_LAYOUTS", "load_countdown"]

#: ``(numbers column, target column)`` pairs, tried in order.
COUNTDOWN_FILE_LAYOUTS = (("input", "output"), ("nums", "target"), ("numbers", "target"))


def _numbers(value, row: int, column: str) -> list[int]:
    items = value.split(",") if isinstance(value, str) else value
    try:
        numbers = [int(str(item).strip()) for item in items]
    except (TypeError, ValueError):
        numbers = []
    if not numbers:
        raise ValueError(f"Row {row}, column {column!r}: expected numbers (a list or '30,100,93'), got {value!r}.")
    return numbers


def _target(value, row: int, column: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"Row {row}, column {column!r}: expected an integer target, got {value!r}.") from None


def load_countdown(
    path: str,
    split: str = "test",
    name: str | None = None,
    data_files: DataFiles | None = None,
    prompt_style: str = "d1",
    conversational: bool | None = None,
    **load_kwargs,
) -> datasets.Dataset:
    """Load a Countdown set in d1's test layout or the hub layout and add the prompts.

    Args:
        path: Hub id, local folder, or packaged builder name (``"json"``) with ``data_files``; see
            :func:`trl_dam.tasks.loading.load_split`.
        split: Split to read (a ``data_files`` file is registered under it).
        name: Hub configuration, if any.
        data_files: Local files, e.g. d1's ``countdown_cd3_test.jsonl``.
        prompt_style: ``"d1"``, ``"d1_eval"`` or ``"compact"``.
        conversational: Conversational prompts (``True``) or plain strings; ``None`` picks conversational for the
            d1 styles and plain text for the compact style.
        **load_kwargs: Passed on to ``datasets.load_dataset``.

    Returns:
        The rows in file order, with columns ``prompt``, ``numbers`` (list of ints, in the file's order) and
        ``target`` (int), as :func:`generate_countdown_dataset` has them (without its reference ``expression``).

    Raises:
        ValueError: If no known layout matches the columns, or a row's numbers or target do not parse (naming it).
    """
    table = load_split(path, split, name=name, data_files=data_files, **load_kwargs)
    layout = next((pair for pair in COUNTDOWN_FILE_LAYOUTS if set(pair) <= set(table.column_names)), None)
    if layout is None:
        source = path if data_files is None else str(data_files)
        raise ValueError(
            f"The Countdown set {source!r} has the columns {table.column_names}; expected one of the layouts "
            f"{COUNTDOWN_FILE_LAYOUTS} (numbers column, target column)."
        )
    numbers_column, target_column = layout
    numbers = [_numbers(value, row, numbers_column) for row, value in enumerate(table[numbers_column])]
    targets = [_target(value, row, target_column) for row, value in enumerate(table[target_column])]
    return datasets.Dataset.from_dict(
        {
            "prompt": [build_countdown_prompt(n, t, prompt_style, conversational) for n, t in zip(numbers, targets)],
            "numbers": numbers,
            "target": targets,
        }
    )
