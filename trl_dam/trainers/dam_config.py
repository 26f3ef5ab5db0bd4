"""Configuration of the [`DAMTrainer`]."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base_config import DiffusionRLConfig, _check
from .grpo_names import BETA_NOTE, grpo_help, loss_type_requirement, resolve_grpo_fields

LOSS_TYPES = ("gkl", "l2")
ADJOINT_ESTIMATORS = ("importance_weighted", "analytic")
DAM_TARGETS = ("first_jump", "all_positions", "all_jumps")
FLOAT32_MAX = 3.4028234663852886e38


@dataclass
class DAMConfig(DiffusionRLConfig):
    r"""
    Configuration class for the [`DAMTrainer`] (Discrete Adjoint Matching, So et al., ICLR 2026).

    Only DAM's own parameters are listed here; the shared ones are documented in [`DiffusionRLConfig`] and the rest in
    [`~transformers.TrainingArguments`]. The trainer fine-tunes the model towards
    $p^*(x) \propto p^{\mathrm{base}}(x)\, e^{r(x)/\beta}$, exactly with the defaults (`"ctmc"` sampler, one token per
    step, `"importance_weighted"`, no `max_log_weight`) when the base is order-consistent (its conditionals come from
    one joint law). For a base that is not (LLaDA is not), the model settles at
    $p_\theta(v|x,i) \propto p_{\mathrm{base}}(v|x,i)\, h(x \oplus (i, v))$, $h$ the base's value of a state: near
    $p^*$, not at it (3 tokens, 3 values: KL$(p^*\|\cdot) = 7.3 \cdot 10^{-3}$ against 0.21 at the base).

    Batch geometry (per device):

    - a *generation round* samples one completion $X_1$ for each of `per_device_prompts_per_generation` prompts and adds
      them to the replay buffer; a round happens every `inner_steps` optimizer steps;
    - each micro-step draws `per_device_train_batch_size // num_generations` buffer samples, re-masks each into a
      training state $X_t$, and runs `num_generations` (K) rollouts from every state. As in GRPO,
      `per_device_train_batch_size` therefore counts completions (rollouts) and must be a multiple of K.

    Parameters:
        > Parameters that control the DAM objective

        beta (`float`, *optional*, defaults to `1.0`):
            KL strength $\beta > 0$: the reward enters as $e^{r/\beta}$. The paper has no $\beta$ (i.e. 1.0). Smaller
            values trust the reward more; with rewards in [0, 1], values around 0.02-0.1 give a visible tilt.
        loss_type (`str`, *optional*, defaults to `"gkl"`):
            `"gkl"`: the paper's importance-debiased generalised KL (eq. 12/14); `"l2"`: squared-error ablation.
        adjoint_estimator (`str`, *optional*, defaults to `"importance_weighted"`):
            `"importance_weighted"`: self-normalised estimate over the K rollouts (eq. 13), weights
            $W_k = K\,\mathrm{softmax}_k(\log\rho_k + r_k/\beta)$. `"analytic"`: the one-sample analytic adjoint of
            Prop. 2.3 (an ablation, biased with model samples), $W_k = \rho_k\, e^{(r_k - r(X_1))/\beta}$.
        dam_target (`str`, *optional*, defaults to `"first_jump"`):
            What each training state teaches, from the same one gradient forward on $X_t$. `"first_jump"`: the paper's
            Algorithm 1, the K first jumps $Y_k$ of the rollouts (K tokens per state). `"all_positions"`: every masked
            position $i$ of $X_t$ towards the final token of every rollout, loss
            $e^{a-b} - W_k + W_k(\log W_k + b - a)$ with $a = \log p_\theta(Z_k[i] | X_t, i)$
            (`trl_dam.core.all_positions`; $K \times$ masked-count tokens per state, one extra no-grad forward per
            state for $b$). Same fixed point for an order-consistent base; see that module for the bias otherwise.
            `"all_jumps"`: every jump of every rollout, each from the state it left, with its rollout's $W_k$ (the
            best on the exact long-sequence benchmark, see Benchmarks); its gradient forward covers every state the
            rollouts visited, $K \times$ (masks of $X_t$) rows per state, so size `per_device_train_batch_size` for it.
        max_log_weight (`float`, *optional*):
            Clip the importance part of the log weights. Each rollout's path log-ratio
            $\log\rho_k = \sum_s \log p_{\mathrm{ref}} - \log p_\theta$ is centred on its group mean and clipped to
            $[-c, c]$ before the reward is added (truncated importance sampling; the softmax does not see the
            centring). Bounds how much the KL correction alone can concentrate the weights. **A different objective**:
            at $p^*$ the path ratio is exactly what cancels the reward ($\log\rho_k = \log h(X_t) - r_k/\beta$), so
            once the spread of $r/\beta$ within a group exceeds $2c$ the fixed point is no longer $p^*$ and training
            drifts towards reward maximisation (one token, $V = 6$, $\beta = 0.1$, $K = 8$, $c = 2$: ten on-policy
            fixed-point iterations from $p^*$ reach KL$(p^*\|Q) = 0.67$, still rising, a token with $p^* = 0.058$
            at $6.5 \cdot 10^{-4}$). Off (`None`) by default. When on, the fraction of rollouts whose
            centred log-ratio exceeded $c$ is logged as `dam/clipped_fraction`.

        > Parameters that control the replay buffer and the loop

        per_device_prompts_per_generation (`int`, *optional*):
            Prompts per generation round (one completion each). `None`: the number of training states of one
            optimizer step, `per_device_train_batch_size // num_generations * gradient_accumulation_steps`.
        inner_steps (`int`, *optional*, defaults to `1`):
            Optimizer steps per generation round (L in Algorithm 1).
        replay_buffer_size (`int`, *optional*):
            Capacity of the FIFO replay buffer of $(prompt, X_1, r)$. `None`: one generation round (on-policy).
        fold_generation (`bool`, *optional*, defaults to `False`):
            Sample a generation round's $X_1$ inside the rollout batch of its micro-step instead of in a sampler run
            of its own: the round's fully masked canvases join the $K$ rollouts of every training state as extra rows
            (policy calls only, no reference calls for them). The rollouts' policy calls then run inside the round's:
            with one token per step a micro-step makes $N + M$ sequential denoiser calls instead of $N + 2M$ ($M$ the
            most masks of its states, close to $N$ with many states), on the same rows. Every round but the first
            (whose buffer is empty) is folded. The micro-step's training states are then drawn from the buffer
            *before* the round's samples are added: they come from earlier rounds, one round staler than without folding (`buffer/staleness` grows by
            `inner_steps`; with the default one-round buffer, each step trains on the previous step's samples). The
            samples are the same law (same sampler settings: the round and the rollouts share `sampler`,
            `diffusion_steps`, `temperature` and `block_length`), the rollouts' weights too, but not the same draws
            for a given seed: the round's rows draw from the same random stream as the rollouts.

        > GRPO's names (see [`trl_dam.trainers.grpo_names`])

        generation_batch_size (`int`, *optional*):
            Refused with an error naming `per_device_prompts_per_generation`, which counts prompts per device.
        steps_per_generation (`int`, *optional*):
            Mapped onto `inner_steps = steps_per_generation / gradient_accumulation_steps` (a multiple is required).
        scale_rewards (`str`, *optional*):
            Only `"none"` / `False` is accepted: DAM uses raw rewards, which enter its target $e^{r/\beta}$.
    """

    beta: float = field(
        default=1.0,
        metadata={"help": "KL strength beta > 0; the reward enters as exp(r / beta). The paper's setting is 1.0."},
    )
    loss_type: str = field(
        default="gkl",
        metadata={"help": "'gkl' (paper eq. 12) or 'l2' (ablation).", "choices": list(LOSS_TYPES)},
    )
    adjoint_estimator: str = field(
        default="importance_weighted",
        metadata={
            "help": "'importance_weighted' (paper eq. 13, self-normalised over the K rollouts) or 'analytic' "
            "(Prop. 2.3 ablation).",
            "choices": list(ADJOINT_ESTIMATORS),
        },
    )
    dam_target: str = field(
        default="first_jump",
        metadata={
            "help": "'first_jump' (paper Algorithm 1: the K first jumps of each state) or 'all_positions' (every "
            "masked position of X_t towards the K rollouts' final tokens, from the same forward) or 'all_jumps' (every "
            "jump of every rollout; a gradient forward on every visited state).",
            "choices": list(DAM_TARGETS),
        },
    )
    max_log_weight: float | None = field(
        default=None,
        metadata={
            "help": "Clip each rollout's centred path log-ratio to [-c, c] (truncated importance sampling). A "
            "different objective: the fixed point is no longer p* but drifts towards reward maximisation once the "
            "spread of r / beta in a group exceeds 2c. None (default) leaves the weights exact."
        },
    )
    per_device_prompts_per_generation: int | None = field(
        default=None,
        metadata={"help": "Prompts per generation round; None = training states per optimizer step."},
    )
    inner_steps: int = field(
        default=1,
        metadata={"help": "Optimizer steps per generation round (L in the paper's Algorithm 1)."},
    )
    replay_buffer_size: int | None = field(
        default=None,
        metadata={"help": "Replay buffer capacity; None keeps one generation round (on-policy)."},
    )
    fold_generation: bool = field(
        default=False,
        metadata={
            "help": "Sample each generation round (but the first) inside its micro-step's rollout batch, as extra "
            "rows without reference calls: N + M sequential denoiser calls instead of N + 2M (M: most masks of a "
            "state). The micro-step's training states then come from earlier rounds (staleness +1 round)."
        },
    )

    # GRPO's names, so that a GRPO recipe fails (or maps) with the DAM equivalent named; see `grpo_names`.
    generation_batch_size: int | None = field(
        default=None, metadata={"help": grpo_help("generation_batch_size", "`per_device_prompts_per_generation`")}
    )
    steps_per_generation: int | None = field(
        default=None,
        metadata={
            "help": grpo_help(
                "steps_per_generation", "`inner_steps` (a multiple of gradient_accumulation_steps maps onto it)"
            )
        },
    )
    scale_rewards: str | None = field(
        default=None,
        metadata={"help": grpo_help("scale_rewards", "none: DAM uses raw rewards ('none' is accepted)")},
    )

    def __post_init__(self):
        super().__post_init__()
        _check(self.beta > 0, "beta", f"must be > 0 (the reward enters as exp(r / beta)). {BETA_NOTE}", self.beta)
        _check(
            1.0 / self.beta < FLOAT32_MAX,
            "beta",
            f"must be >= {1 / FLOAT32_MAX:.3g} (1 / beta, the scale of r / beta, must be a float32 number)",
            self.beta,
        )
        _check(
            self.loss_type in LOSS_TYPES,
            "loss_type",
            loss_type_requirement(self.loss_type, LOSS_TYPES),
            self.loss_type,
        )
        resolve_grpo_fields(self)
        _check(
            self.adjoint_estimator in ADJOINT_ESTIMATORS,
            "adjoint_estimator",
            f"must be one of {ADJOINT_ESTIMATORS}",
            self.adjoint_estimator,
        )
        _check(self.dam_target in DAM_TARGETS, "dam_target", f"must be one of {DAM_TARGETS}", self.dam_target)
        if self.adjoint_estimator == "importance_weighted":
            _check(
                self.num_generations >= 2,
                "num_generations",
                "must be >= 2 with adjoint_estimator='importance_weighted' (the weights are normalised over the "
                "K rollouts of a state)",
                self.num_generations,
            )
        _check(
            self.per_device_train_batch_size % self.num_generations == 0,
            "per_device_train_batch_size",
            f"counts rollouts and must be a multiple of num_generations ({self.num_generations}); e.g. "
            f"{self.num_generations * max(1, self.per_device_train_batch_size // self.num_generations)}",
            self.per_device_train_batch_size,
        )
        _check(self.inner_steps >= 1, "inner_steps", "must be >= 1", self.inner_steps)
        for name in ("replay_buffer_size", "per_device_prompts_per_generation"):
            value = getattr(self, name)
            _check(value is None or value >= 1, name, "must be None or >= 1", value)
        _check(
            self.max_log_weight is None or self.max_log_weight > 0,
            "max_log_weight",
            "must be None or > 0",
            self.max_log_weight,
        )

    @property
    def states_per_micro_step(self) -> int:
        """Training states per device and micro-step: ``per_device_train_batch_size // num_generations``."""
        return self.per_device_train_batch_size // self.num_generations

    @property
    def prompts_per_generation(self) -> int:
        """Resolved ``per_device_prompts_per_generation``."""
        default = self.states_per_micro_step * self.gradient_accumulation_steps
        return self.per_device_prompts_per_generation or default

    @property
    def buffer_capacity(self) -> int:
        """Resolved ``replay_buffer_size``."""
        return self.replay_buffer_size or self.prompts_per_generation
