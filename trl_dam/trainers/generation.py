"""Sampling completions with the current policy (a mixin of `DiffusionRLTrainer`).

Prompt tokenisation (standard and conversational prompts), the fixed-length completion canvas, the denoisers of
the policy and the reference, and the samplers' calls (eval mode, no grad, chunked), optionally recording
reference log-probs along the path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import is_peft_model
from torch import Tensor, nn
from transformers.utils import logging
from trl.data_utils import is_conversational
from trl.models import unwrap_model_for_generation

from trl_dam.core import Trajectory, sample_ctmc, sample_low_confidence
from trl_dam.core.shared_rows import GroupedRowsDenoiser
from trl_dam.models import (
    activation_checkpointing_paused,
    left_padding_mask,
)

logger = logging.get_logger(__name__)


class GenerationMixin:
    """Tokenises prompts, builds canvases and samples them with the policy (see the module docstring)."""

    def _tokenize_prompts(self, prompts: list) -> list[Tensor]:
        """Prompt token ids (chat template with generation prompt for conversational prompts), left-truncated."""
        if is_conversational({"prompt": prompts[0]}):
            ids = self.processing_class.apply_chat_template(
                conversation=prompts,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                **(self.args.chat_template_kwargs or {}),
            )["input_ids"]
        else:
            ids = self.processing_class(text=prompts)["input_ids"]
        keep = self.args.max_prompt_length
        return [torch.tensor(p[-keep:] if keep else p, dtype=torch.long) for p in ids]

    def _canvas(self, prompt_ids: list[Tensor]) -> Tensor:
        """``LongTensor[n, P + N]``: prompts left-padded to a common width ``P``, then N mask tokens."""
        width = max(len(p) for p in prompt_ids)
        x = torch.full((len(prompt_ids), width + self.args.max_completion_length), self.pad_token_id)
        x[:, width:] = self.mask_token_id
        for row, ids in enumerate(prompt_ids):
            x[row, width - len(ids) : width] = ids
        return x.to(self.accelerator.device)

    def _denoiser(self, model: nn.Module, reference: bool = False) -> Callable[[Tensor], Tensor]:
        """``logits_fn(x)`` for the samplers, the left padding read off each ``x`` (see `left_padding_mask`); with
        ``reference`` a PEFT model runs as its reference (see `reference_adapter`)."""
        return self.adapter.bind_left_padded(model, self.pad_token_id, disable_adapter=reference)

    def _attention_mask(self, x: Tensor) -> Tensor | None:
        """Mask of the left padding of ``x``, ``None`` when unpadded (see `left_padding_mask`)."""
        return left_padding_mask(x, self.pad_token_id)

    def _reference_denoiser(self, model: nn.Module) -> Callable[[Tensor], Tensor] | None:
        """The fixed reference (never synced): under PEFT ``model`` with its ``"ref"`` adapter or with its adapters
        disabled (see `_denoiser`), else the frozen copy."""
        if is_peft_model(model):
            return self._denoiser(model, reference=True)
        return self._denoiser(self.ref_model) if self.ref_model is not None else None

    @contextmanager
    def _model_for_sampling(self):
        """The unwrapped model in eval mode (no dropout), with ZeRO-3 weights gathered once for the whole call.

        Under ZeRO-3 the frozen reference is gathered too: the samplers make a data-dependent number of denoiser calls
        (e.g. the CTMC runs as many steps as the most-masked row of *this* rank), so per-forward all-gathers would
        pair up differently on each rank and deadlock.

        Activation checkpointing is paused, not switched off and on again: TRL's unwrapping would re-enable it with
        default kwargs, dropping the user's `gradient_checkpointing_kwargs`.
        """
        zero3 = self.is_deepspeed_enabled and self.accelerator.state.deepspeed_plugin.zero_stage == 3
        if zero3 and not self.args.ds3_gather_for_generation:
            raise NotImplementedError(
                "ds3_gather_for_generation=False is not supported: the number of denoiser calls per sampling call "
                "differs across ranks, so sharded forwards would deadlock."
            )
        with (
            activation_checkpointing_paused(self.model),
            unwrap_model_for_generation(self.model_wrapped, self.accelerator) as model,
            unwrap_model_for_generation(self.ref_model, self.accelerator)
            if zero3 and self.ref_model is not None
            else contextlib.nullcontext(),
        ):
            was_training = model.training
            model.eval()
            try:
                yield model
            finally:
                model.train(was_training)

    def _sample(
        self, x: Tensor, with_reference: bool = False, group_size: int = 1, reference_rows: Tensor | None = None
    ) -> Trajectory:
        """Fill every mask of ``x`` with the current model, ``sampling_batch_size`` rows per sampler call.

        With ``with_reference`` the trajectory also records the reference log-probs of every step (one extra
        reference forward per step, in the same loop), on the rows flagged by ``reference_rows`` only when given.
        ``group_size = K`` declares that ``x`` holds K consecutive copies of each state: calls on still-identical
        copies (the first step) then run once per group (:class:`~trl_dam.core.shared_rows.GroupedRowsDenoiser`; the
        saved rows are logged as `sampling/rows_saved`).
        """
        chunk = self.args.sampling_batch_size or len(x)
        if group_size > 1 and group_size < chunk < len(x):
            chunk -= chunk % group_size  # whole groups per sampler call (never more rows than asked for)
        with self._model_for_sampling() as model:
            policy = GroupedRowsDenoiser(self._denoiser(model), group_size)
            reference = self._reference_denoiser(model) if with_reference else None
            if with_reference and reference is None:
                raise RuntimeError("reference log-probs were requested but the trainer has no reference model")
            if reference is not None:
                reference = GroupedRowsDenoiser(reference, group_size)
            pieces = []
            for i in range(0, len(x), chunk):
                flags = None if reference_rows is None else reference_rows[i : i + chunk]
                pieces.append(self._run_sampler(policy, x[i : i + chunk], reference, flags))
        if group_size > 1:
            self._log_value("sampling/rows_saved", policy.rows_saved + (reference.rows_saved if reference else 0))
        return _cat_trajectories(pieces)

    def _run_sampler(self, policy, x: Tensor, reference, reference_rows: Tensor | None = None) -> Trajectory:
        args = self.args
        if args.sampler == "ctmc":
            return sample_ctmc(
                policy,
                x,
                self.mask_token_id,
                tokens_per_step=args.tokens_per_step,
                temperature=args.temperature,
                reference_logits_fn=reference,
                generator=self.generator,
                reference_rows=reference_rows,
            )
        return sample_low_confidence(
            policy,
            x,
            self.mask_token_id,
            steps=args.num_diffusion_steps,
            block_length=args.block_length or args.max_completion_length,
            completion_start=x.shape[1] - args.max_completion_length,
            temperature=args.temperature,
            reference_logits_fn=reference,
            generator=self.generator,
            reference_rows=reference_rows,
        )

    def _generate_and_score(self, rows: list[dict[str, Any]]) -> ScoredCompletions:
        """Sample one completion per row with the current model, score it, and log reward and length metrics."""
        prompt_ids = self._tokenize_prompts([row["prompt"] for row in rows])
        return self._score_generated(rows, prompt_ids, self._sample(self._canvas(prompt_ids)))

    def _score_generated(
        self, rows: list[dict[str, Any]], prompt_ids: list[Tensor], trajectory: Trajectory
    ) -> ScoredCompletions:
        """Score completions sampled from the rows' fully masked canvases; log reward and length metrics."""
        rewards_per_func, rewards, lengths = self._score(rows, trajectory.final[:, -self.args.max_completion_length :])
        self._log_rewards(rewards_per_func, rewards)
        self._log_mean("completions/mean_length", lengths.float())
        return ScoredCompletions(rows, prompt_ids, trajectory, rewards_per_func, rewards)


@dataclass
class ScoredCompletions:
    """One completion per prompt, sampled by the current model and scored.

    Attributes:
        rows: the dataset rows (``"prompt"`` and the other columns) the completions answer.
        prompt_ids: unpadded prompt token ids, one CPU tensor per row.
        trajectory: the sampler's path from the fully masked canvas (``final[:, -N:]`` is the completion).
        rewards_per_func (`FloatTensor[n, num_funcs]`): raw rewards, NaN where a function returned ``None``.
        rewards (`FloatTensor[n]`): weighted total reward.
    """

    rows: list[dict[str, Any]]
    prompt_ids: list[Tensor]
    trajectory: Trajectory
    rewards_per_func: Tensor
    rewards: Tensor


def select_trajectory_rows(trajectory: Trajectory, rows: slice, with_reference: bool = True) -> Trajectory:
    """The trajectory of ``rows`` only, without the trailing steps that none of them needed (padded because other
    rows of the batch needed them); ``logp_reference`` is dropped unless ``with_reference``."""
    needed = trajectory.step_mask[rows].any(0).nonzero()
    steps = int(needed.max()) + 1 if len(needed) else 0
    reference = trajectory.logp_reference if with_reference else None
    return Trajectory(
        initial=trajectory.initial[rows],
        final=trajectory.final[rows],
        positions=trajectory.positions[rows, :steps],
        tokens=trajectory.tokens[rows, :steps],
        step_mask=trajectory.step_mask[rows, :steps],
        logp_policy=trajectory.logp_policy[rows, :steps],
        logp_reference=None if reference is None else reference[rows, :steps],
    )


def _cat_trajectories(pieces: list[Trajectory]) -> Trajectory:
    """Concatenate sampler chunks along the batch, padding steps / slots (``-1`` positions, zero log-probs)."""
    if len(pieces) == 1:
        return pieces[0]
    steps = max(p.positions.shape[1] for p in pieces)
    width = max(p.positions.shape[2] for p in pieces)

    def pad(t: Tensor | None, value) -> Tensor | None:
        if t is None:
            return None
        grow = [0, width - t.shape[2]] if t.dim() == 3 else []
        return torch.nn.functional.pad(t, [*grow, 0, steps - t.shape[1]], value=value)

    def cat(name: str, value=None) -> Tensor | None:
        tensors = [getattr(p, name) if value is None else pad(getattr(p, name), value) for p in pieces]
        return None if tensors[0] is None else torch.cat(tensors)

    return Trajectory(
        initial=cat("initial"),
        final=cat("final"),
        positions=cat("positions", -1),
        tokens=cat("tokens", -1),
        step_mask=cat("step_mask", False),
        logp_policy=cat("logp_policy", 0.0),
        logp_reference=cat("logp_reference", 0.0),
    )
