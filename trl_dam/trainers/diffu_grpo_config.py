"""Configuration of the [`DiffuGRPOTrainer`] (diffu-GRPO, the D1 baseline)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base_config import DiffusionRLConfig, _check

LOSS_NORMALIZATIONS = ("token", "sequence")


@dataclass
class DiffuGRPOConfig(DiffusionRLConfig):
    r"""
    Configuration class for the [`DiffuGRPOTrainer`] (diffu-GRPO, Zhao et al. 2025, "d1: Scaling Reasoning in
    Diffusion Large Language Models via Reinforcement Learning").

    Only diffu-GRPO's own parameters and the shared ones whose defaults differ are listed here; the rest are documented
    in [`DiffusionRLConfig`] and [`~transformers.TrainingArguments`]. Defaults follow d1's code: LLaDA low-confidence
    block decoding with blocks of 32 and `max_completion_length / 2` steps at temperature 0.9, `p_mask_prompt` 0.15,
    $\epsilon$ 0.2, $\beta$ 0.04, advantages not divided by the group standard deviation, token-averaged loss. d1's
    published runs use `num_iterations` 8 (Sudoku, Countdown) or 12 (GSM8K, MATH), `epsilon` 0.5, `num_generations`
    6, learning rate 3e-6.

    Batch geometry (per device), as in TRL's GRPO: `per_device_train_batch_size` counts completions and must be a
    multiple of `num_generations` (a group of completions of one prompt never spans devices). A *generation round*
    samples the completions of `gradient_accumulation_steps` micro-batches at once and trains on them for
    `num_iterations` optimizer steps.

    Parameters:
        > Parameters that control the diffu-GRPO objective

        beta (`float`, *optional*, defaults to `0.04`):
            Weight of the k3 KL estimate to the reference (the initial model; under PEFT the model with its adapters
            disabled). `0.0` drops the term and the reference forward passes.
        epsilon (`float`, *optional*, defaults to `0.2`):
            Clipping range of the importance ratio, $[1-\epsilon, 1+\epsilon]$ (d1's published runs use 0.5).
        num_iterations (`int`, *optional*, defaults to `1`):
            $\mu$: optimizer steps on each generation round. With $\mu > 1$ the old log-probabilities are those of the
            model that sampled the round, computed once when it was sampled.
        p_mask_prompt (`float`, *optional*, defaults to `0.15`):
            Probability of masking each prompt token in the one-step mean-field log-likelihood (the completion is
            always fully masked). A fresh mask is drawn for each of the $\mu$ iterations and shared by the old,
            reference and current log-probabilities of that iteration.
        scale_rewards (`bool`, *optional*, defaults to `False`):
            Divide the group-centred rewards by the group standard deviation (TRL's GRPO). d1 does not.
        loss_normalization (`str`, *optional*, defaults to `"token"`):
            `"token"`: sum of the per-token terms over the micro-batch divided by its number of completion tokens (d1,
            TRL's `"bnpo"`). `"sequence"`: mean over each completion's tokens, then over completions (TRL's `"grpo"`).
            Completion tokens are those up to and including the first end-of-sequence token.

        > Shared parameters with d1 defaults

        sampler (`str`, *optional*, defaults to `"low_confidence"`):
            Rollouts with LLaDA's low-confidence block decoding, as d1 (`"ctmc"` is also accepted).
        diffusion_steps (`int`, *optional*):
            Denoiser calls for a completion; `None` means `max_completion_length // 2` (two tokens per call, as d1),
            rounded up to a multiple of the number of blocks.
        block_length (`int`, *optional*, defaults to `32`):
            Block size of the low-confidence sampler; it must divide `max_completion_length`.
        temperature (`float`, *optional*, defaults to `0.9`):
            Sampling temperature of the rollouts (d1's default).
        num_generations (`int`, *optional*, defaults to `8`):
            Group size G: completions sampled per prompt.
    """

    # Shared fields with d1's defaults.
    sampler: str = field(
        default="low_confidence",
        metadata={
            "help": "'low_confidence' (LLaDA block decoding, d1) or 'ctmc'.",
            "choices": ["low_confidence", "ctmc"],
        },
    )
    block_length: int | None = field(
        default=32,
        metadata={"help": "Block size of the low-confidence sampler; must divide max_completion_length (d1: 32)."},
    )
    diffusion_steps: int | None = field(
        default=None,
        metadata={"help": "Denoiser calls per completion; None: max_completion_length // 2 (d1)."},
    )
    temperature: float = field(default=0.9, metadata={"help": "Rollout sampling temperature (d1: 0.9)."})

    # diffu-GRPO.
    beta: float = field(
        default=0.04,
        metadata={"help": "Weight of the k3 KL to the reference (d1: 0.04); 0 drops the reference."},
    )
    epsilon: float = field(
        default=0.2,
        metadata={"help": "Clipping range of the importance ratio (d1 default 0.2; its published runs use 0.5)."},
    )
    num_iterations: int = field(
        default=1,
        metadata={"help": "mu: optimizer steps per generation round (d1 runs: 8 Sudoku/Countdown, 12 GSM8K/MATH)."},
    )
    p_mask_prompt: float = field(
        default=0.15,
        metadata={"help": "Probability of masking each prompt token in the one-step log-likelihood (d1: 0.15)."},
    )
    scale_rewards: bool = field(
        default=False,
        metadata={"help": "Divide advantages by the group reward std (TRL GRPO); d1 does not (False)."},
    )
    loss_normalization: str = field(
        default="token",
        metadata={
            "help": "'token': token mean over the micro-batch (d1); 'sequence': mean per completion, then over "
            "completions.",
            "choices": list(LOSS_NORMALIZATIONS),
        },
    )

    def __post_init__(self):
        if self.diffusion_steps is None:
            # d1: two tokens per denoiser call, the same number of calls in every block.
            block = self.block_length or self.max_completion_length
            num_blocks = max(self.max_completion_length // block, 1)
            steps = max(self.max_completion_length // 2, 1)
            self.diffusion_steps = min(-(-steps // num_blocks) * num_blocks, self.max_completion_length)
        super().__post_init__()
        _check(self.beta >= 0, "beta", "must be >= 0", self.beta)
        _check(self.epsilon > 0, "epsilon", "must be > 0", self.epsilon)
        _check(self.num_iterations >= 1, "num_iterations", "must be >= 1", self.num_iterations)
        _check(0 <= self.p_mask_prompt < 1, "p_mask_prompt", "must be in [0, 1)", self.p_mask_prompt)
        _check(
            self.loss_normalization in LOSS_NORMALIZATIONS,
            "loss_normalization",
            f"must be one of {LOSS_NORMALIZATIONS}",
            self.loss_normalization,
        )
        _check(
            self.num_generations >= 2,
            "num_generations",
            "must be >= 2 (advantages are centred within each group of completions)",
            self.num_generations,
        )
        _check(
            self.per_device_train_batch_size % self.num_generations == 0,
            "per_device_train_batch_size",
            f"counts completions and must be a multiple of num_generations ({self.num_generations}); e.g. "
            f"{self.num_generations * max(1, self.per_device_train_batch_size // self.num_generations)}",
            self.per_device_train_batch_size,
        )

    @property
    def prompts_per_micro_batch(self) -> int:
        """Prompts per device and micro-batch: ``per_device_train_batch_size // num_generations``."""
        return self.per_device_train_batch_size // self.num_generations
