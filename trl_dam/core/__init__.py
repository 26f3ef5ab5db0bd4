"""The mathematics of Discrete Adjoint Matching, in torch only (no transformers/TRL imports)."""

from trl_dam.core.adjoint import (
    analytic_log_adjoint,
    clip_log_ratio,
    effective_sample_size,
    importance_log_weights,
    importance_weighted_log_adjoint,
    path_log_ratio,
    self_normalized_weights,
)
from trl_dam.core.buffer import BufferItem, ReplayBuffer
from trl_dam.core.entrgi import entrgi_decode, entropy_weight, relaxed_embeddings, top_p_filter
from trl_dam.core.guidance import posterior_mean_fill, svdd_decode
from trl_dam.core.losses import dam_loss, generalized_kl
from trl_dam.core.masking import remask
from trl_dam.core.policy_gradient import diffu_grpo_loss, group_normalized_advantages, mean_field_token_log_probs
from trl_dam.core.sampling import (
    LogitsFn,
    Trajectory,
    gather_jump_log_probs,
    jump_log_probs,
    logits_at,
    low_confidence_decode,
    masked_scores,
    random_unmasking_order,
    sample_ctmc,
    sample_low_confidence,
    selected_token_log_probs,
    token_log_probs,
)
from trl_dam.core.tilt import target_reward_estimate, tilt_kl, tilt_kl_bound

__all__ = [
    "BufferItem",
    "LogitsFn",
    "ReplayBuffer",
    "Trajectory",
    "analytic_log_adjoint",
    "clip_log_ratio",
    "dam_loss",
    "diffu_grpo_loss",
    "effective_sample_size",
    "entrgi_decode",
    "entropy_weight",
    "gather_jump_log_probs",
    "generalized_kl",
    "group_normalized_advantages",
    "importance_log_weights",
    "importance_weighted_log_adjoint",
    "jump_log_probs",
    "logits_at",
    "low_confidence_decode",
    "masked_scores",
    "mean_field_token_log_probs",
    "path_log_ratio",
    "posterior_mean_fill",
    "random_unmasking_order",
    "relaxed_embeddings",
    "remask",
    "sample_ctmc",
    "sample_low_confidence",
    "selected_token_log_probs",
    "self_normalized_weights",
    "svdd_decode",
    "target_reward_estimate",
    "tilt_kl",
    "tilt_kl_bound",
    "token_log_probs",
    "top_p_filter",
]
