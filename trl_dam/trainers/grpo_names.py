r"""GRPO's configuration names in a [`DAMConfig`]: mapped onto DAM's fields where the meaning carries over, refused
with the DAM equivalent where it does not.

A TRL user brings a GRPO recipe (YAML or command line). Three of its fields have no DAM field of the same name:

- `steps_per_generation` counts the micro-steps served by one generation round; DAM counts optimizer steps
  (`inner_steps`), so a multiple of `gradient_accumulation_steps` maps onto `inner_steps`;
- `generation_batch_size` counts the completions of a round over all processes; a DAM round samples one completion
  per prompt to seed its replay buffer and trains on `num_generations` fresh rollouts from states re-masked from
  them, so the closest knob, `per_device_prompts_per_generation`, counts something else and is not set silently;
- `scale_rewards` normalises GRPO's advantages. DAM has no advantages: the reward enters its target
  $p^* \propto p^{\mathrm{base}} e^{r/\beta}$, so rescaling rewards would change the target; only `"none"` / `False`
  (no scaling, which is what DAM does) is accepted.

`beta` and `loss_type` keep their DAM meanings: DAM's $\beta$ is a temperature on the reward, not GRPO's KL
coefficient (GRPO's `beta = 0.04` is a weak KL penalty; in DAM it is a sharp tilt), and `loss_type` picks DAM's
divergence (`"gkl"` or `"l2"`).
"""

from __future__ import annotations

from transformers.utils import logging

logger = logging.get_logger(__name__)

#: GRPO's loss types, recognised so that the error on `loss_type` can say what it is.
GRPO_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")

#: GRPO fields that DAMConfig accepts only to map or refuse them.
GRPO_FIELDS = ("generation_batch_size", "steps_per_generation", "scale_rewards")

BETA_NOTE = (
    "DAM's `beta` is a temperature on the reward (the target is p* ~ p_base * exp(r / beta)), not GRPO's KL "
    "coefficient: small values trust the reward more"
)


def grpo_help(field: str, equivalent: str) -> str:
    """The `--help` text of a GRPO field that DAMConfig maps or refuses."""
    return f"GRPO's `{field}`, accepted only to map or refuse it: the DAM equivalent is {equivalent}."


def resolve_grpo_fields(config) -> None:
    """Map GRPO fields set on ``config`` (a `DAMConfig`) onto DAM's, or raise a ValueError naming DAM's equivalent."""
    if config.generation_batch_size is not None:
        raise ValueError(
            f"`generation_batch_size` ({config.generation_batch_size}) is GRPO's completions per generation round. "
            "DAM samples one completion per prompt per round and trains on `num_generations` rollouts from states "
            "re-masked from them: set `per_device_prompts_per_generation` (prompts per device and round) instead. "
            f"Note: {BETA_NOTE}."
        )
    steps = config.steps_per_generation
    if steps is not None:
        accumulation = config.gradient_accumulation_steps
        if steps % accumulation:
            raise ValueError(
                f"`steps_per_generation` ({steps}) is GRPO's micro-steps per generation round; DAM's equivalent, "
                f"`inner_steps`, counts optimizer steps, so it must be a multiple of gradient_accumulation_steps "
                f"({accumulation}). Set `inner_steps` instead. Note: {BETA_NOTE}."
            )
        if config.inner_steps not in (1, steps // accumulation):
            raise ValueError(
                f"`steps_per_generation` ({steps}) and `inner_steps` ({config.inner_steps}) disagree; set only "
                "`inner_steps` (optimizer steps per generation round)."
            )
        config.inner_steps = steps // accumulation
        logger.warning(
            f"`steps_per_generation={steps}` (GRPO) mapped onto DAM's `inner_steps={config.inner_steps}` (optimizer "
            f"steps per generation round, with gradient_accumulation_steps={accumulation}). {BETA_NOTE}."
        )
    scale = config.scale_rewards
    if scale is not None and str(scale).lower() not in ("none", "false"):
        raise ValueError(
            f"`scale_rewards={scale!r}` (GRPO's advantage normalisation) has no DAM equivalent: DAM uses the raw "
            "reward, which enters its target p* ~ p_base * exp(r / beta), so scaling it would change the target. "
            f"Remove it (or set 'none'), and tune `beta` or `reward_weights` instead. {BETA_NOTE}."
        )


def loss_type_requirement(value: str, valid: tuple[str, ...]) -> str:
    """The requirement text for a bad `loss_type`, which says so when it is one of GRPO's."""
    if value in GRPO_LOSS_TYPES:
        return (
            f"must be one of {valid} (DAM's divergence); {value!r} is a GRPO loss type, and DAM has no clipped "
            f"surrogate: use 'gkl', the paper's loss. {BETA_NOTE}"
        )
    return f"must be one of {valid}"
