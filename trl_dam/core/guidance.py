r"""Test-time reward guidance on the masked CTMC: SVDD (soft value-based decoding, Li et al. 2024).

SVDD targets :math:`p^{(\alpha)}(x) \propto p_{\mathrm{pre}}(x)\, e^{r(x)/\alpha}` without training. At every step it
draws ``M`` candidate next states from the pre-trained chain, scores each with a value estimate and keeps one:

.. math:: x_{s+1} = y^{(\zeta)}, \quad \zeta \sim \mathrm{Categorical}\big(\mathrm{softmax}_m(\hat v(y^{(m)})/\alpha)\big),
          \quad y^{(m)} \sim Q^{\mathrm{pre}}(\cdot \mid x_s)

(``alpha = 0`` keeps the arg-max). The posterior-mean value (SVDD-PM) is the reward of the denoiser's one-shot
completion of the candidate, :math:`\hat v(y) = r(\arg\max p(\cdot|y))`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from trl_dam.core.sampling import LogitsFn, sample_ctmc


@torch.no_grad()
def posterior_mean_fill(logits_fn: LogitsFn, states: Tensor, mask_token_id: int) -> Tensor:
    r"""Fill every masked position with the denoiser's arg-max token in one call: :math:`\hat x_1(y)`."""
    logits = logits_fn(states).float()
    if mask_token_id < logits.shape[-1]:
        logits[..., mask_token_id] = float("-inf")
    return torch.where(states == mask_token_id, logits.argmax(-1), states)


@torch.no_grad()
def svdd_decode(
    logits_fn: LogitsFn,
    x: Tensor,
    mask_token_id: int,
    reward_fn: Callable[[Tensor], Tensor],
    *,
    num_candidates: int = 8,
    alpha: float = 0.0,
    tokens_per_step: int = 1,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""SVDD-PM decoding from the (partially) masked state ``x``.

    Each row keeps its own lineage: its ``M = num_candidates`` candidates are one CTMC step each (random positions,
    sampled tokens) and compete only with each other.

    Args:
        logits_fn: pre-trained denoiser.
        x (`LongTensor[batch, length]`): start state.
        reward_fn: maps complete states ``LongTensor[n, length]`` to rewards ``FloatTensor[n]``.
        num_candidates (`int`): ``M``.
        alpha (`float`): selection temperature; ``0`` selects the arg-max value.
    Returns:
        `LongTensor[batch, length]`: decoded states.
    """
    if num_candidates < 1:
        raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")
    state = x.clone()
    batch = state.shape[0]
    while (state == mask_token_id).any():
        candidates_in = state.repeat_interleave(num_candidates, 0)
        # One CTMC step from every copy: run the sampler on a state where only k masks remain "to do" would need
        # a new sampler; instead take the first step of a full rollout, which has the same law.
        trajectory = sample_ctmc(
            logits_fn,
            candidates_in,
            mask_token_id,
            tokens_per_step=tokens_per_step,
            temperature=temperature,
            generator=generator,
            max_steps=1,
        )
        candidates = trajectory.final
        values = reward_fn(posterior_mean_fill(logits_fn, candidates, mask_token_id)).float().view(batch, -1)
        if alpha > 0:
            choice = torch.multinomial(torch.softmax(values / alpha, -1).cpu(), 1, generator=generator).squeeze(1)
        else:
            choice = values.argmax(-1).cpu()
        state = candidates.view(batch, num_candidates, -1)[torch.arange(batch), choice.to(state.device)]
    return state
