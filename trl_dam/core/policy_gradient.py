r"""The diffu-GRPO (D1, Zhao et al. 2025) core: group advantages, one-step mean-field likelihood, clipped loss.

D1 replaces the intractable sequence likelihood of a masked diffusion model by a *mean-field* surrogate:
one denoiser call on the prompt (each prompt token masked with probability ``p_mask_prompt``) followed by a
fully masked completion, and per-token log-probabilities of the sampled completion tokens read from it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trl_dam.core.sampling import LogitsFn, selected_token_log_probs


def group_normalized_advantages(rewards: Tensor, group_size: int, scale_rewards: bool = True) -> Tensor:
    r"""GRPO advantages :math:`A_k = (r_k - \bar r_G) / (\sigma_G + 10^{-4})` within groups of ``group_size``.

    Args:
        rewards (`FloatTensor[num_groups * group_size]`): rewards, consecutive groups.
        scale_rewards (`bool`): divide by the group standard deviation (``False`` is d1's choice).
    """
    grouped = rewards.view(-1, group_size)
    advantages = grouped - grouped.mean(1, keepdim=True)
    if scale_rewards:
        advantages = advantages / (grouped.std(1, keepdim=True) + 1e-4)
    return advantages.reshape(-1)


def mean_field_token_log_probs(
    logits_fn: LogitsFn,
    sequences: Tensor,
    completion_mask: Tensor,
    mask_token_id: int,
    p_mask_prompt: float = 0.15,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""One-step mean-field per-token log-likelihood of a completion (D1).

    .. math:: \log \pi_\theta(o_i \mid \tilde q) \approx \log p_\theta\big(o_i \mid \tilde q \oplus m^{|o|}, i\big)

    where :math:`\tilde q` is the prompt with each token masked independently with probability
    ``p_mask_prompt`` and the whole completion is replaced by masks.

    Args:
        sequences (`LongTensor[batch, length]`): prompt and sampled completion.
        completion_mask (`BoolTensor[batch, length]`): ``True`` on completion positions.
    Returns:
        `FloatTensor[batch, length]`: log-probs on completion positions, 0 elsewhere.

    Only the columns from the first to the last completion position are read from the logits, and only the sampled
    token's log-probability (:func:`~trl_dam.core.sampling.selected_token_log_probs`): the largest float32 tensor is
    ``[batch, completion columns, vocab]``, never the whole sequence's.
    """
    masked_input = sequences.clone()
    noise = torch.rand(sequences.shape, generator=generator).to(sequences.device)
    prompt_drop = (~completion_mask) & (noise < p_mask_prompt)
    masked_input[completion_mask | prompt_drop] = mask_token_id
    columns = completion_mask.any(0).nonzero()
    if len(columns) == 0:
        return torch.zeros(sequences.shape, device=sequences.device)
    cols = slice(int(columns[0]), int(columns[-1]) + 1)
    picked = selected_token_log_probs(logits_fn(masked_input)[:, cols], sequences[:, cols], mask_token_id)
    out = torch.zeros(sequences.shape, dtype=picked.dtype, device=sequences.device)
    out[:, cols] = picked * completion_mask[:, cols]
    return out


def diffu_grpo_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    completion_mask: Tensor,
    epsilon: float = 0.2,
    beta: float = 0.0,
    ref_logp: Tensor | None = None,
) -> Tensor:
    r"""Clipped GRPO objective on mean-field token log-probs, averaged per sequence then over the batch.

    .. math:: \mathcal L = -\frac1B\sum_b \frac{1}{|o_b|}\sum_i \Big[\min\big(\rho_{bi} A_b,
              \mathrm{clip}(\rho_{bi}, 1-\epsilon, 1+\epsilon) A_b\big) - \beta\, \mathrm{KL}_{bi}\Big],
              \quad \rho_{bi} = e^{\log\pi_\theta - \log\pi_{\mathrm{old}}}

    with the k3 estimator :math:`\mathrm{KL}_{bi} = e^{\log\pi_{\mathrm{ref}} - \log\pi_\theta}
    - (\log\pi_{\mathrm{ref}} - \log\pi_\theta) - 1`.

    Args:
        logp, old_logp, ref_logp (`FloatTensor[batch, length]`): token log-probs (``old``/``ref`` detached).
        advantages (`FloatTensor[batch]`): per-sequence advantages.
        completion_mask (`BoolTensor[batch, length]`): tokens that count.
    """
    ratio = torch.exp(logp - old_logp.detach())
    adv = advantages.unsqueeze(1)
    per_token = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * adv)
    if beta > 0:
        if ref_logp is None:
            raise ValueError("beta > 0 needs ref_logp")
        delta = ref_logp.detach() - logp
        per_token = per_token - beta * (torch.exp(delta) - delta - 1)
    mask = completion_mask.float()
    per_sequence = (per_token * mask).sum(1) / mask.sum(1).clamp_min(1)
    return -per_sequence.mean()
