"""Load one split of a dataset through ``datasets.load_dataset``, from the Hub or from local data files."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import datasets

__all__ = ["load_split"]

_PACKAGED_BUILDERS = {"arrow", "csv", "json", "parquet", "text"}
_EXTENSION_BUILDERS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv", ".arrow": "arrow"}

DataFiles = (
    str | os.PathLike | Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike | Sequence[str | os.PathLike]]
)


def _first_file(data_files: DataFiles) -> str:
    """Return one file name out of any ``data_files`` shape accepted by ``datasets``."""
    if isinstance(data_files, Mapping):
        return _first_file(next(iter(data_files.values())))
    return _file_list(data_files)[0]


def _file_list(files: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Return one file or a sequence of files as a list of strings (``datasets`` rejects ``Path`` objects)."""
    if isinstance(files, str | os.PathLike):
        return [os.fspath(files)]
    return [os.fspath(file) for file in files]


def _builder_for(data_files: DataFiles) -> str:
    """Infer the packaged ``datasets`` builder (``parquet``, ``json``, ``csv`` ...) from a file extension."""
    file_name = _first_file(data_files)
    for extension, builder in _EXTENSION_BUILDERS.items():
        if file_name.endswith(extension):
            return builder
    raise ValueError(
        f"Cannot infer the file format of {file_name!r}; pass path='parquet', 'json' or 'csv' with data_files."
    )


def load_split(
    path: str,
    split: str,
    name: str | None = None,
    data_files: DataFiles | None = None,
    **load_kwargs,
) -> datasets.Dataset:
    """Load one split with ``datasets.load_dataset``.

    Without ``data_files`` this is ``load_dataset(path, name, split=split)``: ``path`` is a Hub id (e.g.
    ``"openai/gsm8k"``) or a local copy of a Hub dataset repository (a folder with the same files and README).
    With ``data_files`` the files are read by a packaged builder: ``path`` may name it (``"parquet"``,
    ``"json"``, ``"csv"``); any other ``path`` (such as the default Hub id) is ignored together with ``name`` and
    the builder is inferred from the file extension, so give full file paths. A ``data_files`` path or list of
    paths (``str`` or ``pathlib.Path``) is registered under ``split``.

    Args:
        path: Hub id, local folder, or packaged builder name.
        split: Split to return (``"train"``, ``"test"`` ...).
        name: Dataset configuration name on the Hub (e.g. ``"main"`` for GSM8K).
        data_files: Local or remote data files, in any form ``datasets.load_dataset`` accepts.
        **load_kwargs: Passed on to ``datasets.load_dataset`` (``cache_dir``, ``revision`` ...).

    Returns:
        The requested split.
    """
    if data_files is None:
        return datasets.load_dataset(path, name, split=split, **load_kwargs)
    if not isinstance(data_files, Mapping):
        data_files = {split: data_files}
    data_files = {key: _file_list(files) for key, files in data_files.items()}
    builder = path if path in _PACKAGED_BUILDERS else _builder_for(data_files)
    return datasets.load_dataset(builder, data_files=data_files, split=split, **load_kwargs)
