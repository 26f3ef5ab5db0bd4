"""Configuration shared by the masked-diffusion RL trainers (DAM, diffu-GRPO)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ._compat import BaseConfig

SAMPLERS = ("ctmc", "low_confidence")


@dataclass
class DiffusionRLConfig(BaseConfig):
    r"""
    Fields shared by every masked-diffusion RL trainer of `trl_dam`: model loading, prompt handling, the sampler that
    generates completions, and reward weighting. Method configs ([`DAMConfig`]) add their own fields.

    Parameters:
        > Parameters that control the model and reference model

        model_init_kwargs (`str` or `dict[str, Any]`, *optional*):
            Keyword arguments for [`~trl_dam.models.load_diffusion_lm`], used when the trainer's `model` argument is a
            string.
        trust_remote_code (`bool`, *optional*, defaults to `False`):
            Run the Python code that a checkpoint ships (`auto_map` in its config), as the official LLaDA and Dream
            checkpoints need, for the model and its tokenizer alike (and reward models named by id). Off unless
            `True`, as in TRL; `model_init_kwargs={"trust_remote_code": ...}` overrides it for model and tokenizer.
        mask_token_id (`int`, *optional*):
            Mask token id. Inferred from the model config, then the tokenizer (then LLaDA's default for LLaDA).
        disable_dropout (`bool`, *optional*, defaults to `True`):
            Turn dropout off. Rollouts run without dropout (eval mode); the loss compares the training forward with
            the rollouts' log-probs, so dropout there would bias it.

        > Parameters that control the data and the sampler

        max_prompt_length (`int`, *optional*):
            Keep at most this many prompt tokens (truncated on the left). `None` keeps whole prompts.
        max_completion_length (`int`, *optional*, defaults to `128`):
            Completion length N. Masked diffusion fills a fixed-length canvas; end-of-sequence tokens pad the tail.
        num_generations (`int`, *optional*, defaults to `8`):
            Completions sampled per state (DAM: rollouts K per training state; diffu-GRPO: group size).
        sampler (`str`, *optional*, defaults to `"ctmc"`):
            `"ctmc"`: the exact masked CTMC (uniformly random unmasking order), whose path likelihood ratios are
            exact. `"low_confidence"`: LLaDA's semi-autoregressive low-confidence block decoding; its positions depend
            on the model's confidence, so likelihood ratios computed on its paths are approximate.
        diffusion_steps (`int`, *optional*):
            Denoiser calls to fill a fully masked completion; `tokens_per_step = ceil(N / diffusion_steps)`. `None`
            means N steps, one token per step (the exact jump chain). For DAM training keep `None` where exactness
            matters: with $k > 1$ tokens per step the path ratios stay exact, but a $k$-token jump of the model draws
            its tokens independently, so training lands on the product of the optimal jump's marginals, not on
            $p^*$ (2 tokens, $k = 2$, $r = 1\{a = b\}$, $\beta = 0.5$: KL$(p^*\|$learned$) = 0.40$).
        block_length (`int`, *optional*):
            Block size of the `"low_confidence"` sampler; must divide `max_completion_length`. `None`: one block.
        temperature (`float`, *optional*, defaults to `1.0`):
            Sampling temperature (> 0). 1.0 samples the model itself; other values sample a tempered model.
        sampling_batch_size (`int`, *optional*):
            Sequences per sampler call (a memory knob). `None` samples everything of a step in one call. Not to be
            confused with TRL's `generation_batch_size`, which counts completions per generation round.
        chat_template_kwargs (`dict[str, Any]`, *optional*):
            Extra keyword arguments for `apply_chat_template` on conversational prompts.
        shuffle_dataset (`bool`, *optional*, defaults to `True`):
            Shuffle the training prompts.
        ds3_gather_for_generation (`bool`, *optional*, defaults to `True`):
            Under DeepSpeed ZeRO-3, gather the weights once per sampling call instead of per forward.

        > Parameters that control the rewards

        reward_weights (`list[float]`, *optional*):
            Weight of each reward function in the total reward; all ones when `None`.
        reward_timeout (`float`, *optional*):
            Seconds an async reward function may take per call before training stops with an error naming it. `None`:
            no limit. Synchronous functions cannot be interrupted from outside; give them their own timeouts.

        > Parameters that control the logging

        log_completions (`bool`, *optional*, defaults to `False`):
            As TRL's GRPO: at every logging step, print a table of the latest completions (prompt, completion, each
            reward function's value and the columns reward functions add with `log_extra`) with `rich`, write it to
            `output_dir/completions/completions_<step>.parquet`, and log it as a `completions` table to wandb /
            trackio when they are in `report_to`. DAM adds each rollout's weight $W_k$ (`weight`) and the re-masked
            state $X_t$ it started from (`state`); diffu-GRPO adds the `advantage`.
        num_completions_to_print (`int`, *optional*):
            Rows of that table printed to the console (a random sample); `None` prints them all.
    """

    _VALID_DICT_FIELDS = BaseConfig._VALID_DICT_FIELDS + ["model_init_kwargs", "chat_template_kwargs"]

    # Overrides of TrainingArguments / TRL defaults.
    learning_rate: float = field(default=3e-6, metadata={"help": "Initial AdamW learning rate (the DAM paper's)."})
    remove_unused_columns: bool | None = field(
        default=False,
        metadata={"help": "Keep dataset columns other than `prompt`: they are passed to the reward functions."},
    )
    # TRL's base config turns checkpointing on; LLaDA's remote code does not support it, so it stays off unless asked
    # for (None resolves to False in TrainingArguments, without the deprecation warning a False default would raise).
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={
            "help": "Alias of `activation_checkpointing` (off by default). The trainer turns it off, with a warning, "
            "for models that do not support it (e.g. LLaDA's remote code).",
            "nargs": "?",
            "const": True,
        },
    )

    # Model
    model_init_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={"help": "Keyword arguments for `load_diffusion_lm` when `model` is a string."},
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Run the checkpoint's own model/tokenizer code (LLaDA and Dream need it). Off unless set to True."
        },
    )
    mask_token_id: int | None = field(
        default=None,
        metadata={"help": "Mask token id; inferred from the model config or the tokenizer when None."},
    )
    disable_dropout: bool = field(
        default=True,
        metadata={"help": "Disable dropout so the training forward matches the rollouts' log-probs."},
    )

    # Data and sampler
    max_prompt_length: int | None = field(
        default=None,
        metadata={"help": "Keep at most this many prompt tokens (left truncation). None keeps whole prompts."},
    )
    max_completion_length: int = field(
        default=128,
        metadata={"help": "Completion length N (fixed canvas; end-of-sequence tokens pad the tail)."},
    )
    num_generations: int = field(
        default=8,
        metadata={"help": "Completions sampled per state (DAM: rollouts K per training state)."},
    )
    sampler: str = field(
        default="ctmc",
        metadata={
            "help": "'ctmc' (exact masked CTMC, random unmasking order) or 'low_confidence' (LLaDA block decoding; "
            "likelihood ratios on its paths are approximate).",
            "choices": list(SAMPLERS),
        },
    )
    diffusion_steps: int | None = field(
        default=None,
        metadata={
            "help": "Denoiser calls for a fully masked completion; None means one token per step. DAM is exact only "
            "with one token per step: with k > 1 it lands on the product of the optimal jump's marginals."
        },
    )
    block_length: int | None = field(
        default=None,
        metadata={
            "help": "Block size of the 'low_confidence' sampler (divides max_completion_length); None: one block."
        },
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (> 0); 1.0 keeps ratios exact."})
    sampling_batch_size: int | None = field(
        default=None,
        metadata={"help": "Sequences per sampler call (memory knob); None samples a whole step at once."},
    )
    chat_template_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={"help": "Extra keyword arguments for apply_chat_template on conversational prompts."},
    )
    shuffle_dataset: bool = field(default=True, metadata={"help": "Shuffle the training prompts."})
    ds3_gather_for_generation: bool = field(
        default=True,
        metadata={"help": "Under ZeRO-3, gather the weights once per sampling call (faster, more memory)."},
    )

    # Rewards
    reward_weights: list[float] | None = field(
        default=None,
        metadata={"help": "Weight of each reward function in the total reward; all ones when None."},
    )
    reward_timeout: float | None = field(
        default=None,
        metadata={
            "help": "Seconds an async reward function may take per call before training stops with an error naming "
            "it; None: no limit. Synchronous functions are not interrupted."
        },
    )

    # Logging
    log_completions: bool = field(
        default=False,
        metadata={
            "help": "Print, save (output_dir/completions/*.parquet) and log to wandb/trackio a table of the latest "
            "completions with their rewards every logging step (DAM: with each rollout's weight and start state)."
        },
    )
    num_completions_to_print: int | None = field(
        default=None,
        metadata={"help": "Rows of the completions table printed with rich; None prints them all."},
    )

    def __post_init__(self):
        # Before TrainingArguments sees them: an inf learning rate or a NaN reward weight trains to NaN (or, for the
        # weight, silently zeroes the reward) instead of failing.
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, float):
                _check(math.isfinite(value), spec.name, "must be a finite number", value)
        if self.reward_weights is not None:
            _check(
                all(math.isfinite(float(w)) for w in self.reward_weights),
                "reward_weights",
                "must hold finite numbers",
                self.reward_weights,
            )
        super().__post_init__()
        # TrainingArguments accepts 0, which only fails later (as an empty replay buffer, or a division by zero).
        _check(
            self.gradient_accumulation_steps >= 1,
            "gradient_accumulation_steps",
            "must be >= 1",
            self.gradient_accumulation_steps,
        )
        _check(self.max_completion_length >= 1, "max_completion_length", "must be >= 1", self.max_completion_length)
        _check(self.num_generations >= 1, "num_generations", "must be >= 1", self.num_generations)
        _check(self.sampler in SAMPLERS, "sampler", f"must be one of {SAMPLERS}", self.sampler)
        _check(self.temperature > 0, "temperature", "must be > 0 (the samplers are stochastic)", self.temperature)
        _check(
            self.reward_timeout is None or self.reward_timeout > 0,
            "reward_timeout",
            "must be None or > 0",
            self.reward_timeout,
        )
        sizes = (
            "max_prompt_length",
            "sampling_batch_size",
            "diffusion_steps",
            "block_length",
            "num_completions_to_print",
        )
        for name in sizes:
            value = getattr(self, name)
            _check(value is None or value >= 1, name, "must be None or >= 1", value)
        if self.diffusion_steps is not None:
            _check(
                self.diffusion_steps <= self.max_completion_length,
                "diffusion_steps",
                f"must be <= max_completion_length ({self.max_completion_length})",
                self.diffusion_steps,
            )
        if self.block_length is not None:
            _check(
                self.max_completion_length % self.block_length == 0,
                "block_length",
                f"must divide max_completion_length ({self.max_completion_length})",
                self.block_length,
            )
        if self.sampler == "low_confidence":
            num_blocks = self.max_completion_length // (self.block_length or self.max_completion_length)
            _check(
                self.num_diffusion_steps % num_blocks == 0,
                "diffusion_steps",
                f"must be a multiple of the number of blocks ({num_blocks}) for the 'low_confidence' sampler",
                self.num_diffusion_steps,
            )

    @property
    def num_diffusion_steps(self) -> int:
        """Denoiser calls for a fully masked completion (``diffusion_steps``, or N when unset)."""
        return self.diffusion_steps or self.max_completion_length

    @property
    def tokens_per_step(self) -> int:
        """Tokens the CTMC sampler reveals per denoiser call: ``ceil(N / diffusion_steps)``."""
        return math.ceil(self.max_completion_length / self.num_diffusion_steps)


def _check(ok: bool, name: str, requirement: str, value: Any) -> None:
    """Raise a ValueError that names the offending config field."""
    if not ok:
        raise ValueError(f"`{name}` {requirement}, got {value!r}.")
