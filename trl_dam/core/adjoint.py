r"""Discrete adjoint estimators for masked diffusion (paper Props. 2.3, 2.4 and eq. 13).

Notation. Reward :math:`r`, KL strength :math:`\beta`, :math:`g = -r/\beta`. The value of a state under the base
chain is :math:`h(x) = \mathbb{E}_{\mathrm{base}}[e^{r(X_1)/\beta} \mid x]` and the optimal jump chain is the Doob
transform :math:`Q^*(y|x) = Q^{\mathrm{base}}(y|x)\, h(y)/h(x)`. The discrete adjoint estimates the ratio
:math:`h(y)/h(x)` for the first jump :math:`x \to y` of a rollout.

All quantities are kept in log space. Shapes: ``[..., K]`` where the last axis indexes the ``K`` rollouts that
start from the same training state :math:`X_t`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def path_log_ratio(
    logp_reference: Tensor, logp_policy: Tensor, step_mask: Tensor | None = None, first_step: int = 0
) -> Tensor:
    r"""Log path likelihood ratio of a sampled rollout, reference over policy (paper eq. 41).

    .. math:: \log \frac{p^{\mathrm{base}}(\text{path})}{p^{u}(\text{path})}
              = \sum_{s \ge s_0} \big[\log p_{\mathrm{base}}(v_s|x_s, i_s) - \log p_u(v_s|x_s, i_s)\big]

    The jump rate :math:`\lambda` and the position choice :math:`\pi` are shared by both chains and cancel.

    Args:
        logp_reference (`FloatTensor[..., steps]`): per-step reference log-probs.
        logp_policy (`FloatTensor[..., steps]`): per-step sampling log-probs.
        step_mask (`BoolTensor[..., steps]`, *optional*): valid steps.
        first_step (`int`): :math:`s_0`; ``1`` gives the ratio of the path after the first jump (``Y -> Z``).
    Returns:
        `FloatTensor[...]`.
    """
    diff = logp_reference - logp_policy
    if step_mask is not None:
        diff = diff * step_mask
    return diff[..., first_step:].sum(-1)


def clip_log_ratio(log_ratio: Tensor, max_deviation: float, dim: int = -1) -> tuple[Tensor, Tensor]:
    r"""Truncated importance sampling: clip each path log-ratio's deviation from its group mean to :math:`[-c, c]`.

    .. math:: \log\tilde\rho_k = \overline{\log\rho} + \mathrm{clip}(\log\rho_k - \overline{\log\rho}, -c, c)

    **This changes the objective; its fixed point is not** :math:`p^*`. At :math:`u = p^*` every rollout from
    :math:`X_t` has :math:`\log\rho_k = \log h(X_t) - r_k/\beta`: the path ratio is exactly what cancels the reward
    in :math:`\ell_k = \log\rho_k + r_k/\beta`, so that every :math:`W_k = 1`. Clipping it whenever the spread of
    :math:`r/\beta` within a group exceeds :math:`2c` leaves part of the reward uncancelled, so the weights keep
    pushing towards high-reward tokens beyond :math:`p^*` (reward maximisation with a weaker KL anchor). It bounds the
    variance of the weights; use it knowing it is a different objective.

    Args:
        log_ratio (`FloatTensor[..., K]`): :math:`\log\rho_k` of the K rollouts of each state.
        max_deviation (`float`): :math:`c > 0`.
    Returns:
        ``(clipped, was_clipped)``: the clipped log-ratios and the `BoolTensor` of rollouts whose deviation exceeded
        :math:`c` (those whose value changed, not float rounding of the centring).
    """
    centre = log_ratio.mean(dim=dim, keepdim=True)
    deviation = log_ratio - centre
    return centre + deviation.clamp(-max_deviation, max_deviation), deviation.abs() > max_deviation


def importance_log_weights(log_path_ratio: Tensor, rewards: Tensor, beta: float) -> Tensor:
    r"""Unnormalised log importance weights :math:`\ell_k = \log \rho_k + r_k / \beta`.

    :math:`e^{\ell_k}` is an unbiased single-sample estimate of :math:`h(X_t)` when the rollout is drawn from the
    policy: :math:`\mathbb{E}_{u}[\rho\, e^{r/\beta}] = \mathbb{E}_{\mathrm{base}}[e^{r/\beta}]`.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    return log_path_ratio + rewards / beta


def self_normalized_weights(log_weights: Tensor, dim: int = -1) -> Tensor:
    r"""Bounded DAM weights :math:`W_k = K\,\mathrm{softmax}_k(\ell_k)`, so :math:`\frac1K\sum_k W_k = 1` and
    :math:`0 \le W_k \le K`.

    For the first jump :math:`Y_k` of rollout :math:`k` from :math:`X_t` (eqs. 12-13 with eq. 41),

    .. math:: W_k = \frac{Q^{\mathrm{base}}(Y_k|X_t)\,\hat a(Y_k)}{Q^{u}(Y_k|X_t)}, \qquad
              \hat a(Y_k) = \frac{\rho_{Y_k \to Z_k}\, e^{r(Z_k)/\beta}}{\frac1K\sum_j \rho_j\, e^{r(Z_j)/\beta}},

    because the first-jump ratio times the ratio of the rest of the path is the whole path ratio :math:`\rho_k`.
    """
    num = log_weights.shape[dim]
    return torch.softmax(log_weights, dim=dim) * num


def importance_weighted_log_adjoint(
    log_ratio_after_first_jump: Tensor, log_weights: Tensor, rewards: Tensor, beta: float
) -> Tensor:
    r"""Self-normalised importance-weighted adjoint :math:`\log \hat a(Y_k)` (paper eq. 13).

    .. math:: \log \hat a(Y_k) = \log\rho_{Y_k\to Z_k} + \frac{r(Z_k)}{\beta}
              - \log \frac1K \sum_j e^{\ell_j}

    Args:
        log_ratio_after_first_jump (`FloatTensor[..., K]`): :math:`\log\rho_{Y\to Z}` of each rollout.
        log_weights (`FloatTensor[..., K]`): :math:`\ell_j` of the same rollouts (whole path from :math:`X_t`).
        rewards (`FloatTensor[..., K]`): :math:`r(Z_k)`.
    """
    log_denominator = torch.logsumexp(log_weights, dim=-1, keepdim=True) - math.log(log_weights.shape[-1])
    return log_ratio_after_first_jump + rewards / beta - log_denominator


def analytic_log_adjoint(
    rewards_after_jump: Tensor, reward_of_source: Tensor, beta: float, log_ratio_after_first_jump: Tensor | None = None
) -> Tensor:
    r"""Analytic adjoint of Prop. 2.3, one-sample estimate (the paper's ablation).

    .. math:: \tilde a_t(y; X_1) = \sum_z p^{\mathrm{base}}_{1|t}(z|y)\, e^{(r(z) - r(X_1))/\beta}
              \approx \rho_{y \to Z}\, e^{(r(Z) - r(X_1))/\beta}

    :math:`X_1` is the sample the training state :math:`x` was re-masked from and :math:`Z` a rollout from
    :math:`y`: a base rollout (``log_ratio_after_first_jump = None``) or a policy rollout reweighted to the base
    by its path ratio. It is unbiased for :math:`h(y)/h(x)` only when :math:`X_1` is drawn from :math:`p^*`; with
    model samples it is biased, which is why the paper prefers eq. 13.
    """
    log_adjoint = (rewards_after_jump - reward_of_source) / beta
    if log_ratio_after_first_jump is not None:
        log_adjoint = log_adjoint + log_ratio_after_first_jump
    return log_adjoint


def effective_sample_size(log_weights: Tensor, dim: int = -1) -> Tensor:
    r"""Kish effective sample size of importance weights given in log space.

    .. math:: \mathrm{ESS} = \frac{(\sum_k w_k)^2}{\sum_k w_k^2}
              = \exp\big(2\,\mathrm{LSE}(\ell) - \mathrm{LSE}(2\ell)\big)

    Equals ``K`` for equal weights and tends to 1 when one weight dominates.
    """
    return torch.exp(2 * torch.logsumexp(log_weights, dim=dim) - torch.logsumexp(2 * log_weights, dim=dim))
