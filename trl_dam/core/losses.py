r"""Matching losses of Discrete Adjoint Matching (paper eqs. 12 and 14) and the l2 ablation.

The model rate is :math:`u = \lambda Q^\theta(y|x)` and the target :math:`w = \lambda Q^{\mathrm{base}}(y|x)\hat a`.
The common factor :math:`\lambda` does not move the per-state minimiser and is dropped everywhere.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _xlogx_ratio(log_w: Tensor, log_u: Tensor) -> Tensor:
    """:math:`w (\\log w - \\log u)` with the convention ``0 log 0 = 0`` (entries with ``w = 0``)."""
    w = log_w.exp()
    return torch.where(w > 0, w * (log_w - log_u), torch.zeros_like(w))


def generalized_kl(log_u: Tensor, log_w: Tensor, valid: Tensor | None = None) -> Tensor:
    r"""Generalised KL between two non-negative rate vectors, summed over the last axis (paper eq. 12).

    .. math:: D_{\mathrm{gKL}}(u, w) = \sum_{y \ne x} \big[u(y) - w(y) + w(y) \log \tfrac{w(y)}{u(y)}\big]

    It is :math:`\ge 0`, zero iff :math:`u = w`, and (unlike KL) does not need either argument normalised.

    Args:
        log_u (`FloatTensor[..., n]`): log model rates :math:`\log u(y)`.
        log_w (`FloatTensor[..., n]`): log target rates (``-inf`` for zero).
        valid (`BoolTensor[..., n]`, *optional*): entries that are real transitions.
    """
    terms = log_u.exp() - log_w.exp() + _xlogx_ratio(log_w, log_u)
    if valid is not None:
        terms = torch.where(valid, terms, torch.zeros_like(terms))
    return terms.sum(-1)


def dam_loss(logp_model: Tensor, logp_sampler: Tensor, weights: Tensor, loss_type: str = "gkl") -> Tensor:
    r"""Per-sample DAM loss for a sampled jump :math:`Y \sim Q^{\bar u}(\cdot|X_t)` (paper eq. 14).

    With :math:`a = \log Q^\theta(Y|X_t)` (differentiable), :math:`b = \log Q^{\bar u}(Y|X_t)` (detached sampler)
    and the weight :math:`W = w / Q^{\bar u}(Y|X_t)` from :func:`trl_dam.core.adjoint.self_normalized_weights`:

    ``"gkl"`` (the paper's loss, importance-debiased by :math:`1/Q^{\bar u}`):

    .. math:: \frac{1}{Q^{\bar u}}\Big[Q^\theta - w + w \log\frac{w}{Q^\theta}\Big]
              = e^{a-b} - W + W\,(\log W + b - a)

    ``"l2"`` (ablation):

    .. math:: \frac{1}{Q^{\bar u}}\big(Q^\theta - w\big)^2 = e^{b}\,\big(e^{a-b} - W\big)^2

    In expectation over :math:`Y \sim Q^{\bar u}` both equal the full divergence :math:`\sum_y D(Q^\theta(y), w(y))`,
    whose minimiser is :math:`Q^\theta = w`. The gKL gradient is :math:`(e^{a-b} - W)\nabla a`: :math:`(1 - W)\nabla a`
    at :math:`\theta = \bar u` *if* the sampler is the model itself (temperature 1); a tempered sampler has
    :math:`b \ne a` there.

    The gKL loss only sees :math:`a - b` and :math:`W`, in which the position choice :math:`\pi` of
    :math:`Q = \pi\, p(v|x, i)` cancels, so callers may pass token log-probabilities :math:`\log p(v|x, i)` (the
    trainers do). The l2 prefactor :math:`e^b` does not cancel: with token log-probabilities it is
    :math:`Q^{\bar u}/\pi`, so the term of a state with :math:`|M|` masks revealing :math:`k` tokens per jump is
    weighted by :math:`1/\pi = \binom{|M|}{k}` relative to the formula above (same per-state minimiser, but states
    with many masks count more).

    Args:
        logp_model (`FloatTensor[...]`): :math:`a` (requires grad).
        logp_sampler (`FloatTensor[...]`): :math:`b` (treated as a constant).
        weights (`FloatTensor[...]`): :math:`W \ge 0` (treated as a constant).
        loss_type (`str`): ``"gkl"`` or ``"l2"``.
    Returns:
        `DoubleTensor[...]`: per-sample losses (reduce them yourself), computed in float64.
    """
    # float64: the weights of the analytic adjoint reach exp(dr / beta), and W log W overflows float32 well before the
    # gradient e^(a-b) - W does (W = e^88 is a float32 number, 88 e^88 is not).
    a = logp_model.double()
    b = logp_sampler.detach().double()
    weights = weights.detach().double()
    ratio = torch.exp(a - b)
    if loss_type == "gkl":
        log_w = torch.log(weights)
        return ratio - weights + torch.where(weights > 0, weights * (log_w + b - a), torch.zeros_like(ratio))
    if loss_type == "l2":
        return b.exp() * (ratio - weights) ** 2
    raise ValueError(f"loss_type must be 'gkl' or 'l2', got {loss_type!r}")
