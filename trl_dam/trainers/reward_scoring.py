"""Reward calling with TRL's convention (a mixin of `DiffusionRLTrainer`).

Reward functions and reward models, their keyword arguments (`prompts`, `completions`, `completion_ids`, the
dataset columns, `trainer_state`, `log_extra`, `log_metric`), async rewards (see `reward_calls`), weighting,
`None` handling, and errors that name the function.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from torch import Tensor, nn
from transformers import (
    AutoModelForSequenceClassification,
    PreTrainedModel,
)
from transformers.utils import logging
from trl.data_utils import apply_chat_template, is_conversational
from trl.trainer.utils import (
    get_callable_name,
    get_config_model_id,
)

from trl_dam.models import (
    cut_completions,
    load_tokenizer,
)

from .reward_calls import RewardLoop, RewardTimeoutError

logger = logging.get_logger(__name__)

#: A reward: a model id, a sequence-classification model, or `f(prompts, completions, completion_ids, **kw)`.
RewardFunc = str | PreTrainedModel | Callable[..., list[float | None]]

#: Keyword arguments every reward function may receive besides the dataset columns.
REWARD_KWARGS = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric")


class RewardScoringMixin:
    """Sets up the reward functions and scores decoded completions (see the module docstring)."""

    def _setup_rewards(self, reward_funcs, reward_processing_classes, args, train_dataset) -> None:
        funcs = list(reward_funcs) if isinstance(reward_funcs, list | tuple) else [reward_funcs]
        if not funcs:
            raise ValueError("`reward_funcs` must contain at least one reward function.")
        for i, func in enumerate(funcs):
            if isinstance(func, str):
                funcs[i] = AutoModelForSequenceClassification.from_pretrained(
                    func, num_labels=1, trust_remote_code=args.trust_remote_code is True
                )
        self.reward_funcs = funcs
        self._reward_loop = RewardLoop(timeout=args.reward_timeout)
        self.reward_func_names = [
            (get_config_model_id(f.config).split("/")[-1] or type(f).__name__)
            if isinstance(f, nn.Module)
            else get_callable_name(f)
            for f in funcs
        ]
        columns = set(train_dataset.column_names) if isinstance(train_dataset, Dataset) else None
        for func, name in zip(funcs, self.reward_func_names):
            _check_reward_signature(func, name, columns)
        weights = args.reward_weights
        if weights is not None and len(weights) != len(funcs):
            raise ValueError(
                f"`reward_weights` has {len(weights)} entries but there are {len(funcs)} reward functions "
                f"({self.reward_func_names})."
            )
        self.reward_weights = torch.tensor(weights if weights is not None else [1.0] * len(funcs))
        classes = reward_processing_classes
        classes = list(classes) if isinstance(classes, list | tuple) else [classes] * len(funcs)
        if len(classes) != len(funcs):
            raise ValueError(f"Got {len(classes)} reward processing classes for {len(funcs)} reward functions.")
        for i, (func, proc) in enumerate(zip(funcs, classes)):
            if isinstance(func, PreTrainedModel):
                # A reward model built in code arrives in training mode; scoring must not use dropout.
                func.eval().requires_grad_(False)
                proc = proc or load_tokenizer(
                    get_config_model_id(func.config), trust_remote_code=args.trust_remote_code
                )
                if proc.pad_token_id is None:
                    proc.pad_token = proc.eos_token
                func.config.pad_token_id = proc.pad_token_id  # the model scores the last non-pad token
                classes[i] = proc
        self.reward_processing_classes = classes

    def _score(self, rows: list[dict[str, Any]], completion_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Decode ``completion_ids [n, N]`` and score them against ``rows``.

        Returns ``(rewards_per_func [n, F], rewards [n], lengths [n])``; lengths count tokens up to and including the
        first end-of-sequence token.
        """
        prompts = [row["prompt"] for row in rows]
        completions, ids_list = self._decode(prompts, completion_ids)
        self._pending_extra_logs.clear()
        rewards_per_func = self._calculate_rewards(rows, prompts, completions, ids_list)
        rewards = self._total_rewards(rewards_per_func, prompts, completions)
        lengths = torch.tensor([len(ids) for ids in ids_list], device=completion_ids.device)
        self._staged_completions = {
            "prompt": prompts,
            "completion": completions,
            "rewards": rewards_per_func.tolist(),
            "extra": dict(self._pending_extra_logs),
        }
        return rewards_per_func, rewards, lengths

    def _decode(self, prompts: list, completion_ids: Tensor) -> tuple[list, list[list[int]]]:
        """Cut each completion after its first end-of-sequence token and decode it (TRL's completion format)."""
        ids_list = cut_completions(completion_ids, self.eos_token_ids)
        texts = self._tokenizer.batch_decode(ids_list, skip_special_tokens=True)
        if is_conversational({"prompt": prompts[0]}):
            return [[{"role": "assistant", "content": text}] for text in texts], ids_list
        return texts, ids_list

    def _calculate_rewards(self, rows, prompts, completions, completion_ids) -> Tensor:
        """``FloatTensor[n, F]`` of raw rewards (NaN where a function returned ``None``), TRL's calling convention."""
        columns = {key: [row[key] for row in rows] for key in rows[0] if key not in ("prompt", "completion")}
        kwargs = {
            **columns,
            "trainer_state": self.state,
            "log_extra": self._log_completion_extra,
            "log_metric": self._log_reward_metric,
        }
        values_per_func, awaiting = [], []
        for i, (func, proc, name) in enumerate(
            zip(self.reward_funcs, self.reward_processing_classes, self.reward_func_names)
        ):
            try:
                if isinstance(func, nn.Module):
                    values = self._reward_model_scores(func, proc, prompts, completions)
                else:
                    values = func(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)
            except Exception as err:
                values = err
            if inspect.isawaitable(values):
                awaiting.append((i, name, values))  # started together below, so async rewards overlap
            values_per_func.append(values)
        if awaiting:
            results = self._reward_loop.gather([(name, awaitable) for _, name, awaitable in awaiting])
            for (i, _, _), values in zip(awaiting, results):
                values_per_func[i] = values
        out = torch.empty(len(prompts), len(self.reward_funcs))
        for i, (values, name) in enumerate(zip(values_per_func, self.reward_func_names)):
            if isinstance(values, RewardTimeoutError):
                raise values
            if isinstance(values, Exception):
                raise RuntimeError(
                    f"Reward function '{name}' raised {type(values).__name__} while scoring {len(prompts)} "
                    f"completions (step {self.state.global_step}): {values}"
                ) from values
            out[:, i] = torch.tensor(_validate_rewards(values, name, prompts, completions))
        return out.to(self.accelerator.device)

    def _reward_model_scores(self, model: nn.Module, proc, prompts, completions) -> list[float]:
        if is_conversational({"prompt": prompts[0]}):
            texts = [apply_chat_template({"messages": p + c}, proc)["text"] for p, c in zip(prompts, completions)]
        else:
            texts = [p + c for p, c in zip(prompts, completions)]
        inputs = proc(text=texts, return_tensors="pt", padding=True, padding_side="right", add_special_tokens=False)
        with torch.inference_mode():
            return model(**inputs.to(self.accelerator.device)).logits[:, 0].float().tolist()

    def _total_rewards(self, rewards_per_func: Tensor, prompts: list, completions: list) -> Tensor:
        r"""Weighted total :math:`r = \sum_f w_f r_f` over the functions that returned a value (``None`` skipped).

        A completion no function scored has no reward at all; rather than invent one, this raises, naming it.
        """
        unscored = torch.isnan(rewards_per_func).all(1)
        if unscored.any():
            j = int(unscored.nonzero()[0])
            raise ValueError(
                f"Every reward function ({', '.join(self.reward_func_names)}) returned None for completion {j} "
                f"(prompt {prompts[j]!r}, completion {completions[j]!r}), so its total reward is NaN. Return a "
                "number from at least one function for every completion."
            )
        # The functions' values were checked finite as Python floats; what is infinite now overflowed float32.
        overflow = torch.isinf(rewards_per_func)
        if overflow.any():
            j, i = overflow.nonzero()[0].tolist()
            raise ValueError(
                f"Step {self.state.global_step}: reward function '{self.reward_func_names[i]}' returned a value beyond "
                f"float32's range (|r| > {torch.finfo(torch.float32).max:.3g}) for completion {j} (prompt "
                f"{prompts[j]!r}). Rescale the reward."
            )
        total = self._weighted_total(rewards_per_func)
        if not torch.isfinite(total).all():
            j = int((~torch.isfinite(total)).nonzero()[0])
            raise ValueError(
                f"Step {self.state.global_step}: the weighted total reward of completion {j} overflows float32 "
                f"(rewards {rewards_per_func[j].tolist()}, reward_weights {self.reward_weights.tolist()})."
            )
        return total

    def _weighted_total(self, rewards_per_func: Tensor) -> Tensor:
        """``FloatTensor[n]``: weighted sum over reward functions, skipping NaN (``None``) entries."""
        return torch.nansum(rewards_per_func * self.reward_weights.to(rewards_per_func.device), dim=1)


def _validate_rewards(values, name: str, prompts: list, completions: list) -> list[float]:
    """``None`` -> NaN (the function abstains); anything else must be a finite number, one per completion.

    Accepted, as TRL accepts them: any sequence of one value per completion (list, tuple, 1-D numpy array or tensor,
    any iterable but a mapping or a string), each a number `float()` reads (int, bool, numpy or 0-d torch scalar) or
    `None`. Anything else raises a TypeError naming the function.
    """
    if isinstance(values, Mapping | str | bytes) or not isinstance(values, Iterable):
        raise TypeError(
            f"Reward function '{name}' returned {_describe(values)}; it must return a list of {len(prompts)} rewards, "
            "one float (or None to abstain) per completion."
        )
    values = values.tolist() if isinstance(values, Tensor | np.ndarray) else list(values)
    if not isinstance(values, list):  # a 0-d tensor or array
        raise TypeError(f"Reward function '{name}' returned the scalar {values!r}; it must return one per completion.")
    if len(values) != len(prompts):
        raise ValueError(
            f"Reward function '{name}' returned {len(values)} rewards for {len(prompts)} completions; it must return "
            "one per completion."
        )
    out = []
    for j, value in enumerate(values):
        if value is None:
            out.append(math.nan)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"Reward function '{name}' returned {value!r} for completion {j}: not a number.") from err
        if not math.isfinite(number):
            raise ValueError(
                f"Reward function '{name}' returned {number} for completion {j} (prompt {prompts[j]!r}, completion "
                f"{completions[j]!r}). Rewards must be finite; return None to abstain on a completion."
            )
        out.append(number)
    return out


def _describe(values) -> str:
    if isinstance(values, Mapping):
        return f"a {type(values).__name__} (keys {list(values)[:4]!r}), not a list"
    return f"{type(values).__name__} {values!r}"[:200]


def _check_reward_signature(func, name: str, columns: set[str] | None) -> None:
    """Fail at construction, not at the first step, when a reward needs an argument nobody will pass."""
    if isinstance(func, nn.Module):
        return
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        raise ValueError(
            f"Reward function '{name}' must accept **kwargs: it is called with {list(REWARD_KWARGS)} and every "
            "dataset column as keyword arguments."
        )
    if columns is None:
        return
    available = set(REWARD_KWARGS) | (columns - {"prompt"})
    missing = [
        p.name
        for p in parameters
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and p.name not in available
    ]
    if missing:
        raise ValueError(
            f"Reward function '{name}' requires {missing}, which is neither a reward argument {list(REWARD_KWARGS)} "
            f"nor a dataset column {sorted(columns)}."
        )
