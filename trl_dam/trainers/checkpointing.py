"""What the trainers add to transformers' checkpoints: dataset rows stored safely, and skipping incomplete folders.

* **Rows.** The replay buffer keeps each sample's dataset row (its columns feed the reward functions). Checkpoints
  are read back with `torch.load(weights_only=True)`, which refuses arbitrary Python objects (a `datetime` column
  saves, then fails to load). The rows are therefore stored as the bytes of an Arrow table written with the
  dataset's own features (`rows_to_tensor`), which decodes back to the values the dataset served, whatever the column
  types: timestamps, decimals, nested structs and lists, binary, images.
* **Incomplete checkpoints.** transformers writes a checkpoint folder file by file and `trainer_state.json` last, so a
  run killed while saving leaves a folder without it, and `resume_from_checkpoint=True` (transformers'
  `get_last_checkpoint`, which takes the highest step) then fails on it. `last_complete_checkpoint` skips such
  folders, with a warning naming each.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch
from datasets import Dataset, Features
from datasets.table import InMemoryTable
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

__all__ = [
    "TRAINER_STATE_FILE",
    "is_complete_checkpoint",
    "last_complete_checkpoint",
    "rows_from_tensor",
    "rows_to_tensor",
]

logger = logging.get_logger(__name__)

#: Written last into a checkpoint folder by `transformers.Trainer._save_checkpoint`.
TRAINER_STATE_FILE = "trainer_state.json"

_CHECKPOINT_FOLDER = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def rows_to_tensor(rows: list[dict[str, Any]], features: Features | None = None) -> torch.Tensor:
    """``UInt8Tensor``: the Arrow IPC bytes of ``rows`` as a table with ``features`` (inferred where not given).

    A byte tensor is what `torch.load(weights_only=True)` reads back without trusting the file.
    """
    if features is not None and rows and all(key in features for key in rows[0]):
        features = Features({key: features[key] for key in rows[0]})
    else:
        features = None
    table = Dataset.from_list(rows, features=features).data.table
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return torch.frombuffer(bytearray(sink.getvalue().to_pybytes()), dtype=torch.uint8)


def rows_from_tensor(data: torch.Tensor) -> list[dict[str, Any]]:
    """Inverse of `rows_to_tensor`: the rows, decoded with the features stored in the table's schema."""
    table = pa.ipc.open_stream(pa.py_buffer(data.numpy().tobytes())).read_all()
    return Dataset(InMemoryTable(table)).to_list()


def is_complete_checkpoint(folder: str) -> bool:
    """Whether ``folder`` holds a checkpoint whose save finished: its `trainer_state.json` exists and parses."""
    try:
        with open(os.path.join(folder, TRAINER_STATE_FILE)) as f:
            json.load(f)
    except (OSError, ValueError):
        return False
    return True


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The highest-step `checkpoint-N` folder of ``output_dir`` whose save finished, or ``None``.

    Newer folders that are incomplete (a run killed while saving) are skipped with a warning naming them.
    """
    if not os.path.isdir(output_dir):
        return None
    steps = {}
    for name in os.listdir(output_dir):
        match = _CHECKPOINT_FOLDER.match(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            steps[name] = int(match.group(1))
    for name in sorted(steps, key=steps.get, reverse=True):
        folder = os.path.join(output_dir, name)
        if is_complete_checkpoint(folder):
            return folder
        logger.warning(
            f"Skipping the incomplete checkpoint {folder} (no readable {TRAINER_STATE_FILE}: the run was probably "
            "stopped while saving it); resuming from an earlier one."
        )
    return None


#: Per-process file in a checkpoint folder with the sampler RNG and the method's own state (e.g. a replay buffer).
SAMPLER_STATE_FILE = "sampler_state_{rank}.pt"


class CheckpointMixin:
    """The trainers' part of checkpoints: the sampler's random state (subclasses add their own state, e.g. the replay
    buffer), the model card refreshed at each save, and resuming from the newest *complete* checkpoint."""

    def train(self, resume_from_checkpoint: str | bool | None = None, trial=None, **kwargs):
        """`Trainer.train`, with ``resume_from_checkpoint=True`` taking the newest *complete* checkpoint.

        A folder left incomplete by a run stopped while saving is skipped with a warning naming it (see
        [`~trl_dam.trainers.checkpointing.last_complete_checkpoint`]); a path to an incomplete folder is refused.
        """
        if self.train_dataset is None:
            raise ValueError(
                f"{type(self).__name__}.train() needs a `train_dataset` (a dataset with a 'prompt' column)."
            )
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(
                    f"resume_from_checkpoint=True, but {self.args.output_dir} holds no complete checkpoint folder."
                )
        elif isinstance(resume_from_checkpoint, str) and not is_complete_checkpoint(resume_from_checkpoint):
            raise ValueError(
                f"Cannot resume from {resume_from_checkpoint}: it has no readable {TRAINER_STATE_FILE}, so its save "
                "did not finish (or it is not a checkpoint folder). Pass an earlier checkpoint, or True for the "
                "newest complete one."
            )
        return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)

    def _sampler_state_dict(self) -> dict[str, Any]:
        """State restored on resume so the run continues exactly; subclasses extend it."""
        return {"generator": self.generator.get_state()}

    def _load_sampler_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def _save_checkpoint(self, model, trial):
        # As TRL's trainers do, refresh the output folder's model card: `push_to_hub` checkpoint pushes upload it.
        self.create_model_card(model_name=(self.args.hub_model_id or Path(self.args.output_dir).name).split("/")[-1])
        if not self.args.save_only_model:
            # Written before the Trainer saves the checkpoint, because with `hub_strategy="checkpoint"` or
            # `"all_checkpoints"` it starts uploading the folder at the end of `super()._save_checkpoint`.
            folder = os.path.join(self._get_output_dir(trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            os.makedirs(folder, exist_ok=True)
            state_file = os.path.join(folder, SAMPLER_STATE_FILE.format(rank=self.args.process_index))
            torch.save(self._sampler_state_dict(), state_file)
        super()._save_checkpoint(model, trial)

    def _load_rng_state(self, checkpoint: str | None) -> None:
        # The Trainer calls this once when it resumes, after skipping the batches already trained on.
        super()._load_rng_state(checkpoint)
        if checkpoint is None:
            return
        path = os.path.join(checkpoint, SAMPLER_STATE_FILE.format(rank=self.args.process_index))
        if not os.path.isfile(path):
            logger.warning(f"No {os.path.basename(path)} in {checkpoint}: the sampler state starts fresh.")
            return
        self._load_sampler_state_dict(torch.load(path, weights_only=True))
