r"""[`DAMTrainer`]: Discrete Adjoint Matching (So et al., ICLR 2026) for masked diffusion language models.

One optimizer step, following the paper's Algorithm 1 (the data path reads top to bottom in this file):

1. every `inner_steps` steps, a *generation round*: sample $X_1 \sim p^{\bar u}$ for a batch of prompts, score it,
   and add (prompt, $X_1$, rewards) to the replay buffer (`_generation_round`; with `fold_generation`, every round
   after the first is sampled in step 3's sampler run instead, `_rollouts_and_round`, and added after step 2);
2. draw buffer samples and re-mask each into a training state $X_t$ (`remask`: $n \sim U\{0..N-1\}$ tokens kept);
3. run K rollouts from every $X_t$ with the current model, recording policy and reference log-probs at every step,
   and score their final states (`_dam_inputs`);
4. weights $W_k = K\,\mathrm{softmax}_k(\ell_k)$, $\ell_k = \log\rho_k + r_k/\beta$, $\log\rho_k$ the path
   log-likelihood ratio reference/policy of rollout k (`_log_weights`);
5. loss on the K first jumps $Y_k$ of each state, all read from ONE forward of the policy on $X_t$
   (`compute_loss`): $\ell(a_k) = e^{a_k - b_k} - W_k + W_k(\log W_k + b_k - a_k)$,
   $a_k = \log Q^\theta(Y_k|X_t)$, $b_k = \log Q^{\bar u}(Y_k|X_t)$ (the sampler's, detached);
   its gradient is $\frac1K\sum_k (e^{a_k - b_k} - W_k)\nabla a_k$, i.e. $\frac1K\sum_k (1 - W_k)\nabla a_k$ at
   $\theta = \bar u$ when `temperature = 1` (a tempered sampler has $b_k \ne a_k$ there).
"""

from __future__ import annotations

import math
import textwrap
import time
from typing import Any

import torch
from accelerate.utils import gather
from datasets import Dataset
from torch import Tensor
from torch.nn.functional import pad
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.utils import logging

from trl_dam.core import (
    BufferItem,
    ReplayBuffer,
    Trajectory,
    analytic_log_adjoint,
    clip_log_ratio,
    dam_loss,
    effective_sample_size,
    gather_jump_log_probs,
    importance_log_weights,
    path_log_ratio,
    remask,
    self_normalized_weights,
    target_reward_estimate,
    tilt_kl,
    tilt_kl_bound,
)
from trl_dam.core.all_positions import all_positions_dam_loss, all_positions_log_probs

from .base import DiffusionRLTrainer
from .checkpointing import rows_from_tensor, rows_to_tensor
from .dam_config import DAMConfig
from .generation import ScoredCompletions, select_trajectory_rows
from .reward_scoring import RewardFunc

logger = logging.get_logger(__name__)

#: Below this KL(p* || p_base), in nats, the target is called indistinguishable from the base (Pinsker: the total
#: variation is then below 0.071): `_check_beta_ceiling` warns.
BETA_CEILING_KL = 0.01


class DAMTrainer(DiffusionRLTrainer):
    r"""
    Trainer for Discrete Adjoint Matching (DAM), introduced in [Discrete Adjoint
    Matching](https://huggingface.co/papers/2602.07132), for masked diffusion LMs (LLaDA, Dream, masked LMs).

    DAM fine-tunes the model's unmasking rates towards $p^*(x) \propto p^{\mathrm{base}}(x)\, e^{r(x)/\beta}$ by
    matching, at re-masked training states, the first jump of fresh model rollouts to a target built from an
    importance-weighted discrete adjoint. The reference $p^{\mathrm{base}}$ is the model you start from and is never
    synced to the policy.

    $p^*$ is the exact fixed point with the `"ctmc"` sampler, one token per step and an order-consistent base (one
    whose conditionals come from a single joint law). Bases that are not (LLaDA, most trained masked LMs) make the
    model settle at $p_\theta(v|x,i) \propto p_{\mathrm{base}}(v|x,i)\, h(x \oplus (i, v))$ instead, close to but not
    at $p^*$; several tokens per step land on the product of the optimal jump's marginals; `max_log_weight` and the
    `"analytic"` estimator change the target (see [`DAMConfig`]).

    Example:

    ```python
    >>> from datasets import Dataset
    >>> from trl_dam.trainers import DAMConfig, DAMTrainer

    >>> def reward_len(completions, **kwargs):
    ...     return [-abs(20 - len(completion)) for completion in completions]

    >>> dataset = Dataset.from_dict({"prompt": ["The sky is", "The sea is"]})
    >>> args = DAMConfig(
    ...     output_dir="llada-dam", beta=0.1, num_generations=8, max_completion_length=64, trust_remote_code=True
    ... )
    >>> trainer = DAMTrainer(model="GSAI-ML/LLaDA-8B-Instruct", reward_funcs=reward_len, args=args, train_dataset=dataset)
    >>> trainer.train()
    ```

    Args:
        model (`str` or [`~transformers.PreTrainedModel`]):
            A hub id or local path (loaded with [`~trl_dam.models.load_diffusion_lm`]) or a loaded masked diffusion LM.
        reward_funcs (`RewardFunc` or `list[RewardFunc]`):
            Callables with TRL's signature `f(prompts, completions, completion_ids, **dataset_columns) -> list[float |
            None]`, sequence-classification reward models, or their hub ids. `None` means "no opinion" for that
            completion; the total is the weighted sum of the values given (`DAMConfig.reward_weights`).
        args ([`DAMConfig`], *optional*): configuration; `DAMConfig(f"{model_name}-DAM")` when `None`.
        train_dataset ([`~datasets.Dataset`]): a `"prompt"` column, standard (text) or conversational (messages,
            rendered with the tokenizer's chat template). Other columns are passed to the reward functions.
        eval_dataset: same format. Evaluation samples one completion per prompt (`eval_reward`, ...) and computes the
            DAM loss on states re-masked from it (`per_device_eval_batch_size` counts prompts).
        processing_class: tokenizer; loaded from the model id (left padding) when `None`.
        reward_processing_classes: tokenizers of reward models (loaded from their ids when `None`).
        callbacks, optimizers: as for [`~transformers.Trainer`].
        peft_config ([`~peft.PeftConfig`], *optional*): wrap the model in adapters; the reference is then the same
            network with its adapters disabled (no second copy). A `PeftModel` passed as `model` (e.g. an SFT LoRA)
            is itself the reference: its adapter keeps training and a frozen copy of it, the `"ref"` adapter as in
            TRL, gives the reference log-probs. Without PEFT the reference is a frozen copy.
        quantization_config ([`~transformers.BitsAndBytesConfig`], *optional*): load `model` (a string) with k-bit
            weights (QLoRA, with `peft_config`), on this process's device unless `model_init_kwargs` has a
            `device_map`; as in TRL, the adapter weights are kept in bf16 (fp32 LoRA next to bf16 weights would break
            ZeRO-3's gathering, see `DiffusionRLTrainer._wrap_peft`).

    What to watch: `reward` (fresh samples of each generation round), `dam/ess_fraction` (near 0: one rollout
    dominates each state, raise `beta` or lower the learning rate), `dam/kl_estimate` (distance from the
    reference). The loss is a genuine divergence, not a surrogate that hovers at 0.

    Overrides: `_prepare_inputs` (generation rounds, buffer, rollouts, weights), `compute_loss` (one forward per
    state), `get_train_dataloader` / `_get_train_sampler` (base class), `_save_checkpoint` / `_load_rng_state` (replay
    buffer and sampler RNG travel with checkpoints), `log`.
    """

    config_class = DAMConfig
    _tag_names = ["trl", "trl-dam", "dam", "diffusion"]
    _name = "DAM"
    _round_size_hint = "`per_device_prompts_per_generation`"
    _paper = {
        "title": "Discrete Adjoint Matching",
        "id": "2602.07132",
        # docstyle-ignore
        "citation": textwrap.dedent("""\
            @inproceedings{so2026discrete,
                title        = {{Discrete Adjoint Matching}},
                author       = {Oswin So and Brian Karrer and Chuchu Fan and Ricky T. Q. Chen and Guan-Horng Liu},
                year         = 2026,
                booktitle    = {The Fourteenth International Conference on Learning Representations, {ICLR} 2026},
                eprint       = {arXiv:2602.07132},
            }"""),
    }

    def __init__(
        self,
        model: str | PreTrainedModel,
        reward_funcs: RewardFunc | list[RewardFunc],
        args: DAMConfig | None = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | dict[str, Dataset] | None = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        reward_processing_classes: PreTrainedTokenizerBase | list[PreTrainedTokenizerBase | None] | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LambdaLR | None] = (None, None),
        peft_config=None,
        quantization_config=None,
    ):
        super().__init__(
            model,
            reward_funcs,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            reward_processing_classes=reward_processing_classes,
            callbacks=callbacks,
            optimizers=optimizers,
            peft_config=peft_config,
            quantization_config=quantization_config,
        )
        self.replay_buffer = ReplayBuffer(
            self.args.buffer_capacity, seed=self.args.seed + self.accelerator.process_index
        )
        self._last_generation_step: int | None = None
        self._beta_checked = False
        self._largest_log_weight = 0.0  # of the last loss, for the error message of an overflowing gradient

    def _generation_geometry(self) -> tuple[int, int, int]:
        # A round's prompts are served to each of its `inner_steps x gradient_accumulation_steps` micro-steps; only
        # the first one generates, the others train from the buffer.
        args = self.args
        return args.prompts_per_generation, 1, args.inner_steps * args.gradient_accumulation_steps

    # ------------------------------------------------------------------ Algorithm 1

    def _prepare_inputs(self, rows: list[dict[str, Any]]) -> dict[str, Tensor]:
        self._mode = "train" if self.model.training else "eval"
        if self._mode == "eval":
            # Evaluation: fresh samples (logged as eval rewards) are re-masked directly; the buffer is left alone.
            return self._dam_inputs(self._buffer_items(self._generate_and_score(rows)))
        # An empty buffer mid-round only happens after resuming from a checkpoint without the sampler state.
        fold = None
        if self._starts_generation_round() or len(self.replay_buffer) == 0:
            if self.args.fold_generation and len(self.replay_buffer) > 0:
                fold = rows  # sampled with this micro-step's rollouts, added to the buffer after its states are drawn
            else:
                self._generation_round(rows)
        items = self.replay_buffer.sample(self.args.states_per_micro_step)
        self._log_value("buffer/size", len(self.replay_buffer))
        self._log_value("buffer/staleness", sum(self.state.global_step - item.step for item in items) / len(items))
        return self._dam_inputs(items) if fold is None else self._dam_inputs(items, generation_rows=fold)

    def _starts_generation_round(self) -> bool:
        """True on the first micro-step of every `inner_steps`-th optimizer step (also right after a resume)."""
        step = self.state.global_step
        if step % self.args.inner_steps or self._last_generation_step == step:
            return False
        self._last_generation_step = step
        return True

    def _generation_round(self, rows: list[dict[str, Any]]) -> None:
        r"""Algorithm 1, lines 2-3: $X_1 \sim p^{\bar u}$ per prompt, scored, appended to the replay buffer."""
        self._add_round(self._generate_and_score(rows))

    def _add_round(self, scored: ScoredCompletions) -> None:
        """Append a generation round's scored samples to the replay buffer (after the `beta` check)."""
        self._check_beta_ceiling(scored.rewards)
        for item in self._buffer_items(scored):
            self.replay_buffer.add(item.prompt_ids, item.completion_ids, item.rewards, item.step, item.extra)

    def _check_beta_ceiling(self, rewards: Tensor) -> None:
        r"""Warn once when `beta` is so large for the reward's spread that $p^*$ barely differs from the base.

        On the first generation round whose rewards vary (before training has moved the model far, so the samples
        are close to base samples) it computes $\mathrm{KL}(p^* \| p^{\mathrm{base}})$ of the tilt restricted to those
        samples (`tilt_kl`, the plug-in estimate) and warns below `BETA_CEILING_KL`. The samples answer different
        prompts, so their spread includes the spread between prompts and the check errs towards silence.
        """
        if self._beta_checked:
            return
        rewards = gather(rewards.detach().float()).cpu()
        spread = float(rewards.max() - rewards.min())
        if spread == 0:
            return  # nothing to tilt on yet: look again at the next round
        self._beta_checked = True
        beta = self.args.beta
        kl = float(tilt_kl(rewards, beta))
        self._log_value("dam/target_kl_first_round", kl)
        if kl >= BETA_CEILING_KL:
            return
        std = float(rewards.std())
        logger.warning(
            f"beta={beta:g} is large for this reward: the first generation round's {rewards.numel()} rewards spread "
            f"over {spread:.3g} (std {std:.3g}), so the target p* ~ p_base * exp(r / beta) is within "
            f"KL {kl:.2g} nats of the base on them (TV <= {math.sqrt(kl / 2):.2g}; at most "
            f"{tilt_kl_bound(spread, beta):.2g} nats for any rewards in a range that wide). Training towards p* "
            "cannot raise the reward much. DAM's beta is a temperature on the reward, not GRPO's KL coefficient: a "
            f"beta near the reward's std ({std:.3g}) tilts p* visibly (KL about 1/2 nat)."
        )

    def _buffer_items(self, scored: ScoredCompletions) -> list[BufferItem]:
        completions = scored.trajectory.final[:, -self.args.max_completion_length :]
        return [
            BufferItem(prompt, completion, rewards, self.state.global_step, row)
            for prompt, completion, rewards, row in zip(
                scored.prompt_ids, completions, scored.rewards_per_func, scored.rows
            )
        ]

    def _dam_inputs(
        self, items: list[BufferItem], generation_rows: list[dict[str, Any]] | None = None
    ) -> dict[str, Tensor]:
        """Algorithm 1, lines 5-8, for a batch of B buffer samples: re-mask, K rollouts each, rewards, weights.

        With ``generation_rows`` (`fold_generation`) the generation round of those rows is sampled in the same
        sampler run (see `_rollouts_and_round`), then scored and added to the buffer.
        """
        args, num = self.args, self.args.num_generations
        x1 = self._canvas([item.prompt_ids for item in items])
        x1[:, -args.max_completion_length :] = torch.stack([item.completion_ids for item in items]).to(x1.device)
        maskable = torch.zeros_like(x1, dtype=torch.bool)
        maskable[:, -args.max_completion_length :] = True
        x_t, revealed = remask(x1, maskable, self.mask_token_id, self.generator)

        # K rollouts per state, all states of the micro-step in one (chunked) sampler run; the reference
        # log-probs are taken in the same loop.
        start = time.perf_counter()
        if generation_rows is None:
            rollouts = self._sample(x_t.repeat_interleave(num, dim=0), with_reference=True, group_size=num)
        else:
            x_t, rollouts = self._rollouts_and_round(x_t, generation_rows)
        seconds = time.perf_counter() - start
        rows = [item.extra for item in items for _ in range(num)]
        _, rewards, _ = self._score(rows, rollouts.final[:, -args.max_completion_length :])

        log_ratio = path_log_ratio(rollouts.logp_reference, rollouts.logp_policy, rollouts.step_mask).view(-1, num)
        # float64: r / beta of 100 is routine (rewards in {0, 2}, beta = 0.02) and e^100 is not a float32 number.
        log_weights = self._log_weights(log_ratio.double(), rewards.view(-1, num).double(), items)
        weights = log_weights.exp()
        self._log_rollout_metrics(log_ratio, log_weights, rewards, revealed, rollouts.positions, seconds)
        self._log_mean("dam/target_reward", target_reward_estimate(weights, rewards.view(-1, num)))
        if self.args.log_completions:
            states = self._tokenizer.batch_decode(x_t[:, -args.max_completion_length :], skip_special_tokens=False)
            self._commit_completions(
                weight=weights.reshape(-1).tolist(), state=[state for state in states for _ in range(num)]
            )
        inputs = {"x_t": x_t, "weights": weights, **_first_jumps(rollouts, num)}
        if args.dam_target == "all_positions":
            inputs.update(self._all_positions_inputs(x_t, rollouts.final.view(len(items), num, -1)))
        elif args.dam_target == "all_jumps":
            inputs.update(
                jump_positions=rollouts.positions,
                jump_tokens=rollouts.tokens,
                jump_logp_sampler=rollouts.logp_policy,
                jump_mask=rollouts.step_mask,
            )
        return inputs

    def _rollouts_and_round(self, x_t: Tensor, rows: list[dict[str, Any]]) -> tuple[Tensor, Trajectory]:
        r"""`fold_generation`: the K rollouts of every state of ``x_t`` and a generation round for ``rows``, in one
        sampler run; the round is scored and added to the replay buffer. Returns ``(x_t, rollouts)``.

        The round's canvases come after the rollouts, so `GroupedRowsDenoiser` still shares the rollouts' first step,
        and get no reference call (`reference_rows`): the rollouts' path ratios are those of the rollouts alone. The
        two canvases are left-padded to a common width; ``x_t`` is returned with that padding, which the attention
        mask hides, so the loss forward sees the states the rollouts started from.
        """
        num = self.args.num_generations
        prompt_ids = self._tokenize_prompts([row["prompt"] for row in rows])
        canvas = self._canvas(prompt_ids)
        width = max(x_t.shape[1], canvas.shape[1])
        x_t, canvas = (pad(x, (width - x.shape[1], 0), value=self.pad_token_id) for x in (x_t, canvas))
        x = torch.cat([x_t.repeat_interleave(num, dim=0), canvas])
        reference_rows = torch.arange(len(x), device=x.device) < len(x_t) * num
        trajectory = self._sample(x, with_reference=True, group_size=num, reference_rows=reference_rows)
        generated = select_trajectory_rows(trajectory, slice(len(x_t) * num, None), with_reference=False)
        self._add_round(self._score_generated(rows, prompt_ids, generated))
        return x_t, select_trajectory_rows(trajectory, slice(0, len(x_t) * num))

    def _all_positions_inputs(self, x_t: Tensor, finals: Tensor) -> dict[str, Tensor]:
        r"""The rollouts' final tokens and $b_{k,i} = \log p_{\bar u}(Z_k[i] | X_t, i)$ of the sampling model (one
        no-grad forward per state), kept so the loss stays exact when $\theta$ has moved since sampling."""
        with torch.no_grad(), self._model_for_sampling() as model:
            logits = self._denoiser(model)(x_t)
        masked = x_t == self.mask_token_id
        masked[:, : -self.args.max_completion_length] = False  # only completion positions are trained
        return {
            "finals": finals,
            "masked": masked,
            "logp_sampler_positions": all_positions_log_probs(logits, finals, self.mask_token_id),
        }

    def _log_weights(self, log_ratio: Tensor, rewards: Tensor, items: list[BufferItem]) -> Tensor:
        r"""$\log W_k$ for every state (rows) and rollout (columns).

        importance_weighted (eq. 13): $W_k = K\,\mathrm{softmax}_k(\log\rho_k + r_k/\beta)$, so $\frac1K\sum_k W_k = 1$.
        analytic (Prop. 2.3): $W_k = \frac{Q^{\mathrm{base}}(Y_k)}{Q^{\bar u}(Y_k)}\,\rho_{Y_k\to Z_k}\,
        e^{(r_k - r(X_1))/\beta} = \rho_k\, e^{(r_k - r(X_1))/\beta}$ with $X_1$ the buffer sample.
        """
        log_ratio = self._clip_log_ratio(log_ratio)
        beta = self.args.beta
        if self.args.adjoint_estimator == "importance_weighted":
            return torch.log(self_normalized_weights(importance_log_weights(log_ratio, rewards, beta)))
        source = self._weighted_total(torch.stack([item.rewards for item in items]).to(rewards.device)).to(rewards)
        # The first-jump factor of W_k times the ratio of the rest of the path is the whole-path ratio rho_k.
        return analytic_log_adjoint(rewards, source.unsqueeze(1), beta, log_ratio_after_first_jump=log_ratio)

    def _clip_log_ratio(self, log_ratio: Tensor) -> Tensor:
        r"""Truncated importance sampling (`max_log_weight = c`): clip $\log\rho_k - \overline{\log\rho}$ to $[-c, c]$.

        The group mean $\overline{\log\rho}$ is put back afterwards, so with the self-normalised weights (which are
        shift invariant) only the spread of the path ratios within a state is bounded, by $e^{2c}$. This moves the
        fixed point away from $p^*$ towards reward maximisation (see [`~trl_dam.core.adjoint.clip_log_ratio`]).
        """
        c = self.args.max_log_weight
        if c is None:
            return log_ratio
        clipped, was_clipped = clip_log_ratio(log_ratio, c, dim=1)
        self._log_mean("dam/clipped_fraction", was_clipped.float())
        return clipped

    def _log_rollout_metrics(self, log_ratio, log_weights, rewards, revealed, positions, seconds: float) -> None:
        num = self.args.num_generations
        self._log_mean("dam/ess_fraction", effective_sample_size(log_weights) / num)
        self._log_mean("dam/max_weight", torch.softmax(log_weights, dim=1).amax(dim=1))
        # Per-sequence KL(policy || reference) of the completions from X_t: mean_k sum_s (log p_u - log p_ref).
        self._log_mean("dam/kl_estimate", -log_ratio)
        self._log_mean("dam/rollout_reward", rewards)
        self._log_mean("dam/revealed_fraction", revealed.float() / self.args.max_completion_length)
        self._log_value("dam/reward_calls", rewards.numel())
        self._log_value("dam/rollouts_per_second", rewards.numel() / seconds)
        self._log_value("dam/tokens_per_second", int((positions >= 0).sum()) / seconds)

    def compute_loss(self, model, inputs: dict[str, Tensor], return_outputs: bool = False, num_items_in_batch=None):
        """Algorithm 1, line 9: DAM loss on the K first jumps of each state (or, with `dam_target="all_positions"`, on
        every masked position towards the K final tokens), from one policy forward on X_t; `"all_jumps"` forwards
        every state the rollouts visited instead."""
        if self.args.dam_target == "all_jumps":
            loss = self._all_jumps_loss(model, inputs)
        else:
            x_t = inputs["x_t"]
            if self.args.dam_target == "all_positions":
                logits = self.adapter.logits(model, x_t, self._attention_mask(x_t))
                logp_model = all_positions_log_probs(logits, inputs["finals"], self.mask_token_id)
                self._check_weights(inputs["weights"], logp_model.dtype)
                loss = all_positions_dam_loss(
                    logp_model,
                    inputs["logp_sampler_positions"],
                    inputs["weights"],
                    inputs["masked"],
                    self.args.loss_type,
                ).mean()
            else:
                # a_k = log Q^theta(Y_k | X_t) for all K jumps of a state, from one forward whose output head runs at
                # the K jumps' positions only.
                logp_model = self._jump_log_probs(model, x_t, inputs["positions"], inputs["tokens"])
                self._check_weights(inputs["weights"], logp_model.dtype)
                loss = dam_loss(logp_model, inputs["logp_sampler"], inputs["weights"], self.args.loss_type).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"Step {self.state.global_step}: the DAM loss is {float(loss.detach())}; the weights are finite, so the "
                "log-probabilities of the sampled jumps (policy or sampler) are not."
            )
        return (loss, None) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        # A finite loss can still have an overflowing gradient (large analytic weights times the network's Jacobian);
        # the optimizer would turn every parameter into NaN. One device sync for all gradients.
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads and not torch.stack([g.isfinite().all() for g in grads]).all():
            raise FloatingPointError(
                f"Step {self.state.global_step}: the gradient of the DAM loss is not finite (largest weight "
                f"exp({self._largest_log_weight:.1f}), beta = {self.args.beta}). {self._weights_hint()}"
            )
        return loss

    def _weights_hint(self) -> str:
        if self.args.adjoint_estimator == "analytic":
            return (
                "The analytic adjoint's weights are rho_k exp((r_k - r(X_1)) / beta): raise `beta` or use "
                "adjoint_estimator='importance_weighted', whose weights are at most K."
            )
        return "Raise `beta` or lower the learning rate."

    def _check_weights(self, weights: Tensor, dtype: torch.dtype) -> None:
        r"""Raise, naming the step, when the weights $W$ are not finite or the loss gradient $(e^{a-b} - W)/n$ would
        overflow the model's dtype (it would turn every parameter into NaN, and HF would log the loss as 0)."""
        step = self.state.global_step
        bad = ~torch.isfinite(weights)
        if bad.any():
            raise FloatingPointError(
                f"Step {step}: {int(bad.sum())} DAM weights are not finite (e.g. {float(weights[bad][0])}); the log "
                "path ratios or the rewards / beta are."
            )
        largest = weights.max()
        self._largest_log_weight = float(largest.log())
        if largest / weights.numel() > torch.finfo(dtype).max:
            raise FloatingPointError(
                f"Step {step}: the largest DAM weight is exp({self._largest_log_weight:.1f}), so the loss gradient overflows "
                f"{dtype} (beta = {self.args.beta}). {self._weights_hint()}"
            )

    def _jump_log_probs(self, model, states: Tensor, positions: Tensor, tokens: Tensor) -> Tensor:
        r"""$\sum_j \log p_\theta(v_j | x, i_j)$ of the jumps ``positions``/``tokens`` (``[B, ..., k]``, ``-1`` pads) from
        each state of ``states`` (``[B, L]``), the output head run at the jumps' positions only (`positions=` of
        [`~trl_dam.models.DiffusionLMAdapter.logits`]): the gradient forward's logits are ``[B, K k, V]``, not
        ``[B, L, V]``."""
        flat = positions.reshape(positions.shape[0], -1)
        logits = self.adapter.logits(model, states, self._attention_mask(states), positions=flat.clamp(min=0))
        # The jumps' positions become their columns in the restricted logits; pads stay -1.
        columns = torch.arange(flat.shape[1], device=flat.device).expand_as(flat).reshape(positions.shape)
        return gather_jump_log_probs(logits, torch.where(positions >= 0, columns, -1), tokens, self.mask_token_id)

    def _all_jumps_loss(self, model, inputs: dict[str, Tensor]) -> Tensor:
        r"""DAM loss on every jump $x_s \to x_{s+1}$ of every rollout, weighted by its rollout's $W_k$, from one
        forward on all the states the rollouts visited (steps that revealed nothing are left out)."""
        num = inputs["weights"].shape[1]
        valid = inputs["jump_mask"]
        visited = _visited_states(
            inputs["x_t"].repeat_interleave(num, 0), inputs["jump_positions"], inputs["jump_tokens"]
        )[valid]
        logp_model = self._jump_log_probs(
            model, visited, inputs["jump_positions"][valid], inputs["jump_tokens"][valid]
        )
        self._check_weights(inputs["weights"], logp_model.dtype)
        weights = inputs["weights"].reshape(-1, 1).expand_as(valid)[valid]
        return dam_loss(logp_model, inputs["jump_logp_sampler"][valid], weights, self.args.loss_type).mean()

    # ------------------------------------------------------------------ checkpoints

    def _sampler_state_dict(self) -> dict[str, Any]:
        buffer = self.replay_buffer.state_dict()
        # The dataset rows travel as Arrow bytes: weights-only loading refuses e.g. datetime objects.
        rows = [item.pop("extra") for item in buffer["items"]]
        buffer["rows"] = rows_to_tensor(rows, getattr(self.train_dataset, "features", None))
        return {**super()._sampler_state_dict(), "replay_buffer": buffer}

    def _load_sampler_state_dict(self, state: dict[str, Any]) -> None:
        super()._load_sampler_state_dict(state)
        buffer = dict(state["replay_buffer"])
        if "rows" in buffer:
            rows = rows_from_tensor(buffer.pop("rows"))
            buffer["items"] = [{**item, "extra": row} for item, row in zip(buffer["items"], rows, strict=True)]
        self.replay_buffer.load_state_dict(buffer)
        capacity = self.args.buffer_capacity
        if self.replay_buffer.capacity != capacity:
            # The configured size wins over the checkpoint's: the user changed it on purpose.
            logger.warning(
                f"The checkpoint's replay buffer holds up to {self.replay_buffer.capacity} samples; resuming with "
                f"`replay_buffer_size` {capacity} as configured"
                + (f", keeping its newest {capacity}." if len(self.replay_buffer) > capacity else ".")
            )
            self.replay_buffer.resize(capacity)


def _first_jumps(rollouts, num: int) -> dict[str, Tensor]:
    """The first jump ``Y_k`` of every rollout, grouped ``[states, K, ...]``, with the sampler's ``log Q(Y_k|X_t)``.

    It is the first step that revealed a token: step 0 for the CTMC, while the low-confidence sampler skips the
    blocks that X_t already has filled.
    """
    rows = torch.arange(rollouts.positions.shape[0], device=rollouts.positions.device)
    step = rollouts.step_mask.long().argmax(dim=1)
    return {
        "positions": rollouts.positions[rows, step].view(-1, num, rollouts.positions.shape[2]),
        "tokens": rollouts.tokens[rows, step].view(-1, num, rollouts.tokens.shape[2]),
        "logp_sampler": rollouts.logp_policy[rows, step].view(-1, num),
    }


def _visited_states(initial: Tensor, positions: Tensor, tokens: Tensor) -> Tensor:
    """``[batch, steps, length]``: the state before every step of each rollout (``positions``/``tokens`` as recorded
    by the sampler, ``-1`` pads)."""
    states, state = [], initial.clone()
    rows = torch.arange(initial.shape[0], device=initial.device).unsqueeze(1).expand_as(positions[:, 0])
    for step in range(positions.shape[1]):
        states.append(state.clone())
        written = positions[:, step] >= 0
        state[rows[written], positions[:, step][written]] = tokens[:, step][written]
    return torch.stack(states, 1)
