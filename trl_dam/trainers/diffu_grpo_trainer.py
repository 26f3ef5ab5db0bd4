r"""[`DiffuGRPOTrainer`]: diffu-GRPO (D1, Zhao et al. 2025), the GRPO baseline for masked diffusion LMs.

One generation round, then `num_iterations` ($\mu$) optimizer steps on it (the data path reads top to bottom):

1. *generation round* (`_generation_round`): sample G completions per prompt with the current model (LLaDA
   low-confidence block decoding by default), score them, and centre the rewards within each group
   (`group_normalized_advantages`, not divided by the standard deviation unless `scale_rewards`);
2. draw one prompt-masking seed per iteration and micro-batch; with $\mu > 1$ compute the *old* per-token
   log-probabilities $\log\pi_{\mathrm{old}}$ of every iteration with the sampling model, and with $\beta > 0$ the
   reference ones, all from the one-step mean-field likelihood (`mean_field_token_log_probs`: prompt tokens masked with
   probability `p_mask_prompt`, completion fully masked, one forward pass);
3. each micro-step (`compute_loss`): the current model's mean-field log-probs under the same seed as the old and
   reference ones, and the clipped objective with the k3 KL (`diffu_grpo_loss`)

   $$\mathcal L = -\frac{1}{\sum|o|}\sum_{b,i}\Big[\min\big(\rho_{bi}A_b, \mathrm{clip}(\rho_{bi},1\pm\epsilon)A_b\big)
   - \beta\,\mathrm{KL}_{bi}\Big],\qquad \rho_{bi} = e^{\log\pi_\theta - \log\pi_{\mathrm{old}}},$$

   where $|o|$ counts completion tokens up to and including the first end-of-sequence token. At the first iteration
   $\log\pi_{\mathrm{old}} = \mathrm{stopgrad}(\log\pi_\theta)$, as in d1.
"""

from __future__ import annotations

import textwrap
from typing import Any

import torch
from datasets import Dataset
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.utils import logging

from trl_dam.core import diffu_grpo_loss, group_normalized_advantages, mean_field_token_log_probs
from trl_dam.models import completion_lengths

from .base import DiffusionRLTrainer
from .diffu_grpo_config import DiffuGRPOConfig
from .reward_scoring import RewardFunc

logger = logging.get_logger(__name__)


class DiffuGRPOTrainer(DiffusionRLTrainer):
    r"""
    Trainer for diffu-GRPO, introduced in [d1: Scaling Reasoning in Diffusion Large Language Models via Reinforcement
    Learning](https://huggingface.co/papers/2504.12216), for masked diffusion LMs (LLaDA, Dream, masked LMs).

    GRPO with group-centred advantages over `num_generations` completions per prompt, a one-step mean-field per-token
    likelihood (prompt randomly masked, completion fully masked, one forward pass), `num_iterations` clipped updates
    per generation round and an optional k3 KL to the reference. It shares model loading, adapters, the PEFT or frozen
    reference, rollouts, reward calling, logging and checkpointing with [`DAMTrainer`] through
    [`DiffusionRLTrainer`].

    Example:

    ```python
    >>> from datasets import Dataset
    >>> from trl_dam.trainers import DiffuGRPOConfig, DiffuGRPOTrainer

    >>> def reward_len(completions, **kwargs):
    ...     return [-abs(20 - len(completion)) for completion in completions]

    >>> dataset = Dataset.from_dict({"prompt": ["The sky is", "The sea is"]})
    >>> args = DiffuGRPOConfig(
    ...     output_dir="llada-d1", num_generations=6, per_device_train_batch_size=6, num_iterations=8,
    ...     trust_remote_code=True,
    ... )
    >>> trainer = DiffuGRPOTrainer(
    ...     model="GSAI-ML/LLaDA-8B-Instruct", reward_funcs=reward_len, args=args, train_dataset=dataset
    ... )
    >>> trainer.train()
    ```

    Args:
        model (`str` or [`~transformers.PreTrainedModel`]):
            A hub id or local path (loaded with [`~trl_dam.models.load_diffusion_lm`]) or a loaded masked diffusion LM.
        reward_funcs (`RewardFunc` or `list[RewardFunc]`):
            Callables with TRL's signature `f(prompts, completions, completion_ids, **dataset_columns) -> list[float |
            None]`, sequence-classification reward models, or their hub ids; weighted by `reward_weights`.
        args ([`DiffuGRPOConfig`], *optional*): configuration; `DiffuGRPOConfig(f"{model_name}-DiffuGRPO")` when
            `None`.
        train_dataset ([`~datasets.Dataset`]): a `"prompt"` column, standard or conversational; other columns are
            passed to the reward functions.
        eval_dataset: same format. Evaluation samples a group per prompt (`per_device_eval_batch_size` counts prompts)
            and logs its rewards and loss.
        processing_class: tokenizer; loaded from the model id (left padding) when `None`.
        reward_processing_classes: tokenizers of reward models (loaded from their ids when `None`).
        callbacks, optimizers: as for [`~transformers.Trainer`].
        peft_config ([`~peft.PeftConfig`], *optional*): wrap the model in adapters; the reference is then the same
            network with its adapters disabled. A `PeftModel` passed as `model` with `beta > 0` gets a frozen copy
            of its adapter (TRL's `"ref"` adapter) as the reference. Without PEFT (and with `beta > 0`) it is a frozen
            copy.
        quantization_config ([`~transformers.BitsAndBytesConfig`], *optional*): k-bit loading with `peft_config`, as
            for [`DAMTrainer`].

    Overrides: `_prepare_inputs` (generation rounds, old and reference log-probs, the per-micro-step slice),
    `compute_loss`, `_generation_geometry`, and the sampler state saved with checkpoints (the current round).
    """

    config_class = DiffuGRPOConfig
    _tag_names = ["trl", "trl-dam", "diffu-grpo", "d1", "diffusion"]
    _name = "DiffuGRPO"
    _round_size_hint = "per_device_train_batch_size / num_generations x gradient_accumulation_steps"
    _paper = {
        "title": "d1: Scaling Reasoning in Diffusion Large Language Models via Reinforcement Learning",
        "id": "2504.12216",
        # docstyle-ignore
        "citation": textwrap.dedent("""\
            @article{zhao2025d1,
                title        = {{d1: Scaling Reasoning in Diffusion Large Language Models via Reinforcement Learning}},
                author       = {Siyan Zhao and Devaansh Gupta and Qinqing Zheng and Aditya Grover},
                year         = 2025,
                eprint       = {arXiv:2504.12216},
            }"""),
    }

    def __init__(
        self,
        model: str | PreTrainedModel,
        reward_funcs: RewardFunc | list[RewardFunc],
        args: DiffuGRPOConfig | None = None,
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
        self._round: list[dict[str, Any]] | None = None  # the current generation round, one entry per micro-batch
        self._round_step: int | None = None  # optimizer step at which the current micro-step count started
        self._micro_step = 0  # index of the micro-step within the optimizer step

    def _generation_geometry(self) -> tuple[int, int, int]:
        # One dataloader batch holds a whole generation round (G copies of each prompt, all its micro-batches) and is
        # served to each of the round's `num_iterations x gradient_accumulation_steps` micro-steps.
        args = self.args
        ga = args.gradient_accumulation_steps
        return args.prompts_per_micro_batch * ga, args.num_generations, args.num_iterations * ga

    # ------------------------------------------------------------------ the diffu-GRPO step

    def _prepare_inputs(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        self._mode = "train" if self.model.training else "eval"
        if self._mode == "eval":
            # Evaluation: a fresh group per prompt, the loss at the first iteration (old = current).
            rows = [row for row in rows for _ in range(self.args.num_generations)]
            return self._generation_round(rows, num_slices=1, num_iterations=1)[0] | {"iteration": 0}
        step = self.state.global_step
        if self._round_step != step:
            self._round_step, self._micro_step = step, 0
        else:
            self._micro_step += 1
        ga = self.args.gradient_accumulation_steps
        if (step % self.args.num_iterations == 0 and self._micro_step == 0) or self._round is None:
            if self._round is None and step % self.args.num_iterations:
                logger.warning(
                    "Resuming in the middle of a generation round without its saved state: sampling a new round."
                )
            self._round = self._generation_round(rows, num_slices=ga, num_iterations=self.args.num_iterations)
        return self._round[self._micro_step % ga] | {"iteration": step % self.args.num_iterations}

    @torch.no_grad()
    def _generation_round(self, rows: list[dict[str, Any]], num_slices: int, num_iterations: int) -> list[dict]:
        """Sample and score a group per prompt, then cut the round into micro-batches with their seeds and the old
        (when ``num_iterations > 1``) and reference (when ``beta > 0``) log-probs of every iteration."""
        args, num = self.args, self.args.num_generations
        scored = self._generate_and_score(rows)
        sequences = scored.trajectory.final
        completions = sequences[:, -args.max_completion_length :]
        advantages = group_normalized_advantages(scored.rewards, num, scale_rewards=args.scale_rewards)
        self._commit_completions(advantage=advantages.tolist())
        grouped = scored.rewards.view(-1, num)
        self._log_value("reward_calls", len(rows))
        self._log_mean("frac_reward_zero_std", (grouped.std(1) < 1e-8).float() if num > 1 else torch.ones(1))
        loss_mask = self._completion_mask(completions)
        # One prompt-masking seed per iteration and micro-batch, drawn from the checkpointed sampler generator.
        seeds = torch.randint(0, 2**62, (num_iterations, num_slices), generator=self.generator)
        size = len(rows) // num_slices
        slices = []
        with self._model_for_sampling() as model:
            policy = self._denoiser(model)
            reference = self._reference_denoiser(model) if args.beta > 0 else None
            for i in range(num_slices):
                part = slice(i * size, (i + 1) * size)
                item = {
                    "sequences": sequences[part],
                    "loss_mask": loss_mask[part],
                    "advantages": advantages[part],
                    "seeds": seeds[:, i].clone(),
                }
                if num_iterations > 1:  # iteration 0 uses the current log-probs, detached (the same model)
                    item["old_logp"] = torch.stack(
                        [
                            self._token_log_probs(policy, sequences[part], int(seeds[j, i]))
                            for j in range(1, num_iterations)
                        ]
                    )
                if reference is not None:
                    item["ref_logp"] = torch.stack(
                        [
                            self._token_log_probs(reference, sequences[part], int(seeds[j, i]))
                            for j in range(num_iterations)
                        ]
                    )
                slices.append(item)
        return slices

    def _completion_mask(self, completions: Tensor) -> Tensor:
        """``BoolTensor[n, N]``: completion tokens up to and including the first end-of-sequence token (d1)."""
        lengths = completion_lengths(completions, self.eos_token_ids)
        return torch.arange(completions.shape[1], device=completions.device) < lengths[:, None]

    def _token_log_probs(self, logits_fn, sequences: Tensor, seed: int) -> Tensor:
        r"""``FloatTensor[n, N]``: one-step mean-field log-probs of the completion tokens under the mask of ``seed``.

        The prompt tokens are masked with probability `p_mask_prompt` and the whole completion is masked
        (`mean_field_token_log_probs`); left padding is put back before the forward so it stays invisible.
        """
        length = self.args.max_completion_length
        completion = torch.zeros_like(sequences, dtype=torch.bool)
        completion[:, -length:] = True
        padding = (sequences != self.pad_token_id).cumsum(1) == 0

        def keep_padding(x: Tensor) -> Tensor:
            return logits_fn(torch.where(padding, sequences, x))

        generator = torch.Generator().manual_seed(seed)
        logp = mean_field_token_log_probs(
            keep_padding, sequences, completion, self.mask_token_id, self.args.p_mask_prompt, generator
        )
        return logp[:, -length:]

    def compute_loss(self, model, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch=None):
        """The clipped diffu-GRPO loss of one micro-batch at iteration ``inputs["iteration"]``."""
        args, iteration = self.args, inputs["iteration"]
        sequences = inputs["sequences"]
        adapter = self.adapter

        def logits_fn(x: Tensor) -> Tensor:
            return adapter.logits(model, x, self._attention_mask(x))

        logp = self._token_log_probs(logits_fn, sequences, int(inputs["seeds"][iteration]))
        old = inputs["old_logp"][iteration - 1] if iteration > 0 else logp.detach()
        ref = inputs["ref_logp"][iteration] if args.beta > 0 else None
        mask, advantages = inputs["loss_mask"], inputs["advantages"]
        loss = self._loss(logp, old, advantages, mask, ref)
        self._log_loss_metrics(logp.detach(), old, advantages, mask, ref)
        return (loss, None) if return_outputs else loss

    def _loss(self, logp: Tensor, old: Tensor, advantages: Tensor, mask: Tensor, ref: Tensor | None) -> Tensor:
        """`diffu_grpo_loss` with the configured normalisation.

        The core function averages per completion; the token mean of d1 is the same function applied to one-token
        rows (each token its own "sequence" carrying its completion's advantage), rescaled from the mean over all
        ``n x N`` entries to the mean over the ``sum(mask)`` completion tokens.
        """
        args = self.args
        if args.loss_normalization == "sequence":
            return diffu_grpo_loss(logp, old, advantages, mask, args.epsilon, args.beta, ref)
        n, length = logp.shape
        per_token = diffu_grpo_loss(
            logp.reshape(-1, 1),
            old.reshape(-1, 1),
            advantages.repeat_interleave(length),
            mask.reshape(-1, 1),
            args.epsilon,
            args.beta,
            ref.reshape(-1, 1) if ref is not None else None,
        )
        return per_token * (n * length) / mask.sum().clamp_min(1)

    def _log_loss_metrics(self, logp, old, advantages, mask, ref) -> None:
        eps = self.args.epsilon
        ratio = torch.exp(logp - old)
        adv = advantages.unsqueeze(1)
        low = (ratio < 1 - eps) & (adv < 0)
        high = (ratio > 1 + eps) & (adv > 0)
        tokens = mask.sum().clamp_min(1)
        self._log_mean("clip_ratio/low_mean", (low & mask).sum() / tokens)
        self._log_mean("clip_ratio/high_mean", (high & mask).sum() / tokens)
        self._log_mean("clip_ratio/region_mean", ((low | high) & mask).sum() / tokens)
        if ref is not None:
            delta = ref - logp
            self._log_mean("kl", ((torch.exp(delta) - delta - 1) * mask).sum() / tokens)

    # ------------------------------------------------------------------ checkpoints

    def _sampler_state_dict(self) -> dict[str, Any]:
        return {**super()._sampler_state_dict(), "round": self._round}

    def _load_sampler_state_dict(self, state: dict[str, Any]) -> None:
        super()._load_sampler_state_dict(state)
        self._round = state.get("round")
