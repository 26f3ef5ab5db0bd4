"""Checkpoints and data, through real `train(resume_from_checkpoint=...)` runs of the tiny CPU setup: dataset rows of
any column type survive a resume, a checkpoint left incomplete by a kill is skipped, a changed `replay_buffer_size`
is honoured, and bad datasets or configs are refused at construction with the culprit named."""

from __future__ import annotations

import datetime
import decimal
import logging
import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
from datasets import Dataset
from trainer_helpers import PROMPTS, N, build_trainer, char_tokenizer, cpu_config_kwargs, frac_a, history
from transformers import TrainerCallback

from trl_dam.trainers import DAMConfig, DAMTrainer, DiffuGRPOConfig, DiffuGRPOTrainer
from trl_dam.trainers.checkpointing import rows_from_tensor, rows_to_tensor


@pytest.fixture(scope="module")
def tokenizer():
    return char_tokenizer()


def dam_args(tmp_path, **overrides) -> DAMConfig:
    return DAMConfig(**cpu_config_kwargs(tmp_path, **{"beta": 0.05, **overrides}))


def grpo_args(tmp_path, **overrides) -> DiffuGRPOConfig:
    return DiffuGRPOConfig(**cpu_config_kwargs(tmp_path, **{"block_length": N, **overrides}))


class BufferSnapshots(TrainerCallback):
    """The replay buffer's contents after every save, and at the first step a (resumed) run begins."""

    def __init__(self, trainer):
        self.trainer, self.saved, self.first_step = trainer, {}, None
        trainer.add_callback(self)

    def on_save(self, args, state, control, **kwargs):
        self.saved[state.global_step] = contents(self.trainer.replay_buffer)

    def on_step_begin(self, args, state, control, **kwargs):
        if self.first_step is None:
            self.first_step = contents(self.trainer.replay_buffer)


def contents(buffer) -> dict:
    return {
        "capacity": buffer.capacity,
        "generator": buffer.generator.get_state().tolist(),
        "items": [
            (i.prompt_ids.tolist(), i.completion_ids.tolist(), i.rewards.tolist(), i.step, i.extra)
            for i in buffer.items
        ],
    }


# ---------------------------------------------------------------------------------------------- rows in checkpoints

AWKWARD = {
    "when": [datetime.datetime(2024, 1, 2, 3, 4, 5, 6) + datetime.timedelta(days=i) for i in range(len(PROMPTS))],
    "day": [datetime.date(2020, 1, 1 + i) if i % 3 else None for i in range(len(PROMPTS))],
    "price": [decimal.Decimal(f"{i}.25") for i in range(len(PROMPTS))],
    "meta": [{"tags": ["x"] * (i % 3), "inner": {"k": i, "f": [0.5] * (i % 2)}} for i in range(len(PROMPTS))],
    "blob": [bytes([i, 255, 0]) for i in range(len(PROMPTS))],
    "weight": [np.float32(i / 4) for i in range(len(PROMPTS))],
}


def reward_reading_columns(completions, when, day, price, meta, blob, weight, **kwargs):
    """frac_a, after checking that every awkward column arrives with its type (also for rows read back from a
    checkpoint's replay buffer)."""
    assert all(isinstance(w, datetime.datetime) for w in when) and all(isinstance(p, decimal.Decimal) for p in price)
    assert all(isinstance(m["inner"]["k"], int) and isinstance(b, bytes) for m, b in zip(meta, blob))
    assert all(d is None or isinstance(d, datetime.date) for d in day) and all(isinstance(x, float) for x in weight)
    return frac_a(completions)


def test_rows_round_trip_through_arrow_bytes():
    dataset = Dataset.from_dict({"prompt": PROMPTS, **AWKWARD})
    rows = [dataset[i] for i in (3, 0, 3)]
    assert rows_from_tensor(rows_to_tensor(rows, dataset.features)) == rows
    assert rows_from_tensor(rows_to_tensor(rows)) == rows  # features inferred
    assert rows_from_tensor(rows_to_tensor([], dataset.features)) == []


def test_buffer_rows_with_awkward_columns_survive_a_resume(tmp_path, tokenizer):
    # Before: the save worked, then the resume failed with an UnpicklingError (weights-only load of a datetime).
    dataset = Dataset.from_dict({"prompt": PROMPTS, **AWKWARD})
    overrides = dict(max_steps=4, save_strategy="steps", save_steps=3, inner_steps=2, replay_buffer_size=4)
    full = build_trainer(DAMTrainer, dam_args(tmp_path, **overrides), tokenizer, reward_reading_columns, dataset)
    saved = BufferSnapshots(full)
    full.train()
    assert len(saved.saved[3]["items"]) == 4 and isinstance(saved.saved[3]["items"][0][4]["when"], datetime.datetime)

    resumed = build_trainer(DAMTrainer, dam_args(tmp_path, **overrides), tokenizer, reward_reading_columns, dataset)
    loaded = BufferSnapshots(resumed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-3"))
    assert loaded.first_step == saved.saved[3]
    # Step 4 trains from the restored buffer only (no generation round): the uninterrupted run's loss.
    assert history(resumed, "loss")[-1] == history(full, "loss")[-1]


# ---------------------------------------------------------------------------------------------- interrupted saves


def test_a_checkpoint_left_incomplete_by_a_kill_is_skipped(tmp_path, tokenizer, caplog):
    overrides = dict(max_steps=4, save_strategy="steps", save_steps=2)
    full = build_trainer(DAMTrainer, dam_args(tmp_path, **overrides), tokenizer)
    full.train()
    losses = history(full, "loss")
    # A kill while saving checkpoint-4 leaves only the sampler state, which the trainer writes first.
    broken = tmp_path / "out" / "checkpoint-4"
    for path in broken.iterdir():
        if path.name != "sampler_state_0.pt":
            path.unlink() if path.is_file() else __import__("shutil").rmtree(path)
    assert [p.name for p in broken.iterdir()] == ["sampler_state_0.pt"]

    resumed = build_trainer(DAMTrainer, dam_args(tmp_path, **overrides), tokenizer)
    with pytest.raises(ValueError, match="checkpoint-4: it has no readable trainer_state.json"):
        resumed.train(resume_from_checkpoint=str(broken))
    # Before: "Can't find a valid checkpoint at .../checkpoint-4".
    with caplog.at_level(logging.WARNING), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed.train(resume_from_checkpoint=True)
    assert f"Skipping the incomplete checkpoint {broken}" in caplog.text
    # Steps 1-2 are checkpoint-2's log history, steps 3-4 retrained: the uninterrupted run's numbers.
    assert [e["step"] for e in resumed.state.log_history if "loss" in e] == [1, 2, 3, 4]
    assert history(resumed, "loss") == losses
    assert (broken / "trainer_state.json").is_file()  # saved again, complete this time


def test_resume_true_without_a_complete_checkpoint_says_so(tmp_path, tokenizer):
    trainer = build_trainer(DAMTrainer, dam_args(tmp_path), tokenizer)
    (tmp_path / "out" / "checkpoint-2").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no complete checkpoint folder"):
        trainer.train(resume_from_checkpoint=True)


# ---------------------------------------------------------------------------------------------- replay_buffer_size


@pytest.mark.parametrize("new_size", [2, 9])
def test_replay_buffer_size_is_honoured_on_resume(tmp_path, tokenizer, caplog, new_size):
    # Before: the checkpoint's capacity (6) silently replaced the configured one.
    overrides = dict(max_steps=5, inner_steps=2, per_device_prompts_per_generation=3, save_strategy="steps")
    full = build_trainer(DAMTrainer, dam_args(tmp_path, replay_buffer_size=6, save_steps=3, **overrides), tokenizer)
    saved = BufferSnapshots(full)
    full.train()
    assert saved.saved[3]["capacity"] == 6 and len(saved.saved[3]["items"]) == 6

    args = dam_args(tmp_path, replay_buffer_size=new_size, save_steps=10, **overrides)
    resumed = build_trainer(DAMTrainer, args, tokenizer)
    loaded = BufferSnapshots(resumed)
    with caplog.at_level(logging.WARNING), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-3"))
    assert f"up to 6 samples; resuming with `replay_buffer_size` {new_size}" in caplog.text
    assert loaded.first_step["capacity"] == new_size
    assert loaded.first_step["items"] == saved.saved[3]["items"][-new_size:]  # the newest samples are kept
    # Step 5 adds a round of 3: the buffer grows to its new capacity.
    assert resumed.replay_buffer.capacity == new_size and len(resumed.replay_buffer) == min(new_size, 9)


# ---------------------------------------------------------------------------------------------- bad data


@pytest.mark.parametrize(("trainer_class", "make_args"), [(DAMTrainer, dam_args), (DiffuGRPOTrainer, grpo_args)])
def test_bad_datasets_are_refused_at_construction(tmp_path, tokenizer, trainer_class, make_args):
    args = make_args(tmp_path)
    questions = Dataset.from_dict({"question": PROMPTS})
    # Before: constructed fine, then a bare KeyError: 'prompt' at the first step.
    with pytest.raises(ValueError, match=r"`train_dataset` has no 'prompt' column \(its columns: \['question'\]\)"):
        build_trainer(trainer_class, args, tokenizer, dataset=questions)
    with pytest.raises(ValueError, match=r"`eval_dataset\['hard'\]` has no 'prompt' column"):
        trainer_class(
            "unused",
            frac_a,
            args=args,
            train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
            eval_dataset={"hard": questions},
            processing_class=tokenizer,
        )
    # Before: "TypeError: object of type 'NoneType' has no len()" from the sampler when training started.
    with pytest.raises(ValueError, match="needs a `train_dataset`.*both are None"):
        trainer_class("unused", frac_a, args=args, processing_class=tokenizer)
    model = build_trainer(trainer_class, args, tokenizer).model
    evaluate_only = trainer_class(
        model, frac_a, args=args, eval_dataset=Dataset.from_dict({"prompt": PROMPTS[:8]}), processing_class=tokenizer
    )
    assert "eval_reward" in evaluate_only.evaluate()
    with pytest.raises(ValueError, match=r"train\(\) needs a `train_dataset`"):
        evaluate_only.train()


@pytest.mark.parametrize("config", [DAMConfig, DiffuGRPOConfig])
def test_zero_gradient_accumulation_steps_names_the_field(tmp_path, config):
    # Before (DAM): "replay buffer capacity must be >= 1, got 0" when the trainer was built.
    with pytest.raises(ValueError, match="`gradient_accumulation_steps` must be >= 1, got 0"):
        config(**cpu_config_kwargs(tmp_path, block_length=N, gradient_accumulation_steps=0))
