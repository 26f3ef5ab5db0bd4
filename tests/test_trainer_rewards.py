"""Reward calling shared by both trainers: the return values TRL accepts, errors naming the function for the rest,
async rewards awaited together on a background loop (also from inside a running event loop), and `reward_timeout`."""

from __future__ import annotations

import asyncio
import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from trainer_helpers import PROMPTS, N, build_trainer, char_tokenizer, cpu_config_kwargs, frac_a, history

from trl_dam.trainers import DAMConfig, DAMTrainer, DiffuGRPOConfig, DiffuGRPOTrainer
from trl_dam.trainers.reward_calls import RewardTimeoutError

ROWS = [{"prompt": p} for p in PROMPTS[:3]]
COMPLETIONS = ["aab", "b", "aaaa"]


@pytest.fixture(scope="module")
def tokenizer():
    return char_tokenizer()


def make_trainer(tmp_path, tokenizer, reward_funcs, trainer_class=DAMTrainer, **overrides):
    config = DAMConfig if trainer_class is DAMTrainer else DiffuGRPOConfig
    defaults = {"beta": 0.05} if config is DAMConfig else {"block_length": N}
    args = config(**cpu_config_kwargs(tmp_path, **{**defaults, **overrides}))
    return build_trainer(trainer_class, args, tokenizer, reward_funcs)


def score(trainer) -> torch.Tensor:
    prompts = [row["prompt"] for row in ROWS]
    return trainer._calculate_rewards(ROWS, prompts, COMPLETIONS, [[0]] * len(ROWS))


def returning(value, name: str):
    def reward(completions, **kwargs):
        return value() if callable(value) else value

    reward.__name__ = name
    return reward


# ---------------------------------------------------------------------------------------------- return values


@pytest.mark.parametrize(
    "value",
    [
        [1, True, None],
        (1.0, 1.0, None),
        lambda: (v for v in [1.0, 1.0, None]),
        [np.float32(1.0), np.int64(1), None],
        [torch.tensor(1.0), 1.0, None],
    ],
    ids=["list-int-bool", "tuple", "generator", "numpy-scalars", "0d-tensor"],
)
def test_sequences_of_numbers_or_none_are_accepted(tmp_path, tokenizer, value):
    trainer = make_trainer(tmp_path, tokenizer, [returning(value, "r"), frac_a])
    out = score(trainer)
    assert out[:2, 0].tolist() == [1.0, 1.0] and math.isnan(out[2, 0])  # None is NaN: skipped, not scored 0
    assert out[:, 1].tolist() == pytest.approx([2 / 6, 0.0, 4 / 6])
    torch.testing.assert_close(trainer._weighted_total(out), torch.tensor([1 + 2 / 6, 1.0, 4 / 6]))


def test_arrays_and_tensors_are_accepted(tmp_path, tokenizer):
    trainer = make_trainer(
        tmp_path,
        tokenizer,
        [returning(np.array([0.5, 1.5, 2.5]), "numpy"), returning(torch.tensor([3.0, 2.0, 1.0]), "tensor")],
    )
    assert score(trainer).tolist() == [[0.5, 3.0], [1.5, 2.0], [2.5, 1.0]]


@pytest.mark.parametrize(
    ("value", "match"),
    [
        # Before: a dict was scored as its keys, here the rewards 0, 1 and 2.
        ({0: 1.0, 1: 0.0, 2: 1.0}, r"'r' returned a dict \(keys \[0, 1, 2\]\), not a list"),
        # Before: a bare TypeError from `list()` ("'float' object is not iterable"), naming no function.
        (1.0, "'r' returned float 1.0; it must return a list of 3 rewards"),
        (None, "'r' returned NoneType None"),
        ("abc", "'r' returned str 'abc'"),
        (torch.tensor(1.0), "'r' returned the scalar 1.0"),
        (np.array(2.0), "'r' returned the scalar 2.0"),
    ],
    ids=["dict", "float", "None", "str", "0d-tensor", "0d-array"],
)
def test_other_return_values_raise_naming_the_function(tmp_path, tokenizer, value, match):
    trainer = make_trainer(tmp_path, tokenizer, [frac_a, returning(value, "r")])
    with pytest.raises(TypeError, match=match):
        score(trainer)


# ---------------------------------------------------------------------------------------------- async rewards


def test_async_rewards_overlap_and_mix_with_sync_ones(tmp_path, tokenizer):
    events = []

    async def slow_a(completions, **kwargs):
        events.append("a started")
        await asyncio.sleep(0)  # hands the loop over: the other reward starts here if they run together
        events.append("a finished")
        return [1.0] * len(completions)

    class SlowB:  # an async callable object, as TRL supports
        __name__ = "slow_b"

        async def __call__(self, completions, **kwargs):
            events.append("b started")
            await asyncio.sleep(0)
            events.append("b finished")
            return [2.0] * len(completions)

    def returns_coroutine(completions, **kwargs):  # a plain function whose result must be awaited
        return slow_a(completions)

    trainer = make_trainer(tmp_path, tokenizer, [slow_a, frac_a, SlowB(), returns_coroutine])
    out = score(trainer)
    assert out[:, 0].tolist() == [1.0] * 3 and out[:, 2].tolist() == [2.0] * 3 and out[:, 3].tolist() == [1.0] * 3
    assert out[:, 1].tolist() == pytest.approx([2 / 6, 0.0, 4 / 6])
    # Before: each ran to its end under its own `asyncio.run` before the next one started.
    assert events[:3] == ["a started", "b started", "a started"]
    assert sorted(events[3:]) == ["a finished", "a finished", "b finished"]


def test_async_rewards_inside_a_running_event_loop(tmp_path, tokenizer):
    """As in Jupyter, whose cells run inside an event loop (before: "asyncio.run() cannot be called from a running
    event loop"). A whole training step runs there, for both trainers."""

    async def frac_a_async(completions, **kwargs):
        await asyncio.sleep(0)
        return frac_a(completions)

    async def notebook_cell(trainer):
        trainer.train()
        return score(trainer)

    for trainer_class in (DAMTrainer, DiffuGRPOTrainer):
        trainer = make_trainer(tmp_path, tokenizer, [frac_a_async], trainer_class=trainer_class, max_steps=1)
        out = asyncio.run(notebook_cell(trainer))
        assert out[:, 0].tolist() == pytest.approx([2 / 6, 0.0, 4 / 6])
        assert len(history(trainer, "rewards/frac_a_async/mean")) == 1


def test_reward_timeout_names_the_hung_function(tmp_path, tokenizer):
    finished = []

    async def hangs(completions, **kwargs):
        await asyncio.Event().wait()  # never set

    async def quick(completions, **kwargs):
        finished.append(True)
        return [0.0] * len(completions)

    trainer = make_trainer(tmp_path, tokenizer, [quick, hangs], reward_timeout=0.2)
    with pytest.raises(RewardTimeoutError, match=r"'hangs' did not return within `reward_timeout` = 0.2 s"):
        score(trainer)
    assert finished == [True]


def test_async_reward_errors_name_the_function(tmp_path, tokenizer):
    async def broken(completions, **kwargs):
        raise KeyError("answer")

    async def returns_dict(completions, **kwargs):
        return {"reward": 1.0}

    trainer = make_trainer(tmp_path, tokenizer, [frac_a, broken])
    with pytest.raises(RuntimeError, match="Reward function 'broken' raised KeyError while scoring 3 completions"):
        score(trainer)
    trainer = make_trainer(tmp_path, tokenizer, [returns_dict])
    with pytest.raises(TypeError, match="'returns_dict' returned a dict"):
        score(trainer)


@pytest.mark.parametrize(
    ("timeout", "message"),
    [(0.0, "must be None or > 0"), (-1.0, "must be None or > 0"), (float("nan"), "must be a finite number")],
)
def test_reward_timeout_must_be_positive(tmp_path, timeout, message):
    for config in (DAMConfig, DiffuGRPOConfig):
        with pytest.raises(ValueError, match=f"`reward_timeout` {message}"):
            config(**cpu_config_kwargs(tmp_path, block_length=N, reward_timeout=timeout))
    assert DAMConfig.__dataclass_fields__["reward_timeout"].metadata["help"]
