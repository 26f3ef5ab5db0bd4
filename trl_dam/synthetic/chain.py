r"""Two-token masked chains on :math:`\{m, 1..M\}^2`, enumerated exactly.

A chain is given by its jump distributions, as log-probabilities:

* ``root`` — ``[2, M]``: :math:`\log Q(i, v \mid (m, m))`, a joint softmax over (position, token); the entries sum to
  one over both axes.
* ``half`` — ``[2, M, M]``: ``half[j, v, w]`` = :math:`\log Q(w \mid x^{(j)} = v)`, the token written at the other
  position once position ``j`` holds ``v``.

Generation is exactly two jumps, so every marginal is a small sum:

.. math:: p_1(i, v) = Q(i, v \mid mm), \qquad
          p_2(a, b) = Q(0, a \mid mm)\, Q(b \mid x^{(0)} = a) + Q(1, b \mid mm)\, Q(a \mid x^{(1)} = b).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class TwoJumpChain:
    """Log jump probabilities of a two-token masked chain (see module docstring)."""

    root: Tensor
    half: Tensor

    @property
    def size(self) -> int:
        return self.root.shape[-1]


def base_chain(p_base: Tensor) -> TwoJumpChain:
    r"""The order-consistent masked chain whose final marginal is ``p_base[M, M]``.

    The first position is uniform and the token follows the base marginal of that position; the second jump draws
    from the base conditional:

    .. math:: Q(i, v \mid mm) = \tfrac12 p^{(i)}(v), \qquad Q(w \mid x^{(0)} = v) = p(w \mid x^{(0)} = v),

    so :math:`p_2 = \tfrac12 p + \tfrac12 p = p`. It has the same form :math:`\pi(i)\,p(v|x,i)` as a masked LM.
    """
    log_p = p_base.log()
    marginal_0 = torch.logsumexp(log_p, 1)
    marginal_1 = torch.logsumexp(log_p, 0)
    root = torch.stack([marginal_0, marginal_1]) - torch.log(torch.tensor(2.0, dtype=log_p.dtype))
    half = torch.stack([log_p - marginal_0[:, None], log_p.T - marginal_1[:, None]])
    return TwoJumpChain(root, half)


def final_log_marginal(chain: TwoJumpChain) -> Tensor:
    """:math:`\\log p_2(a, b)`, ``[M, M]`` (see module docstring)."""
    via_first = chain.root[0][:, None] + chain.half[0]
    via_second = (chain.root[1][:, None] + chain.half[1]).T
    return torch.logaddexp(via_first, via_second)


def optimal_chain(base: TwoJumpChain, reward: Tensor, beta: float = 1.0) -> TwoJumpChain:
    r"""The Doob transform :math:`Q^*(y|x) = Q^{\mathrm{base}}(y|x)\,h(y)/h(x)` with :math:`h = E[e^{r/\beta}]`.

    Its final marginal is :math:`p^* \propto p^{\mathrm{base}} e^{r/\beta}`.
    """
    scaled = reward / beta
    log_h_final = torch.stack([scaled, scaled.T])  # [j, v, w]: reward of the completed state
    half = base.half + log_h_final
    log_h_half = torch.logsumexp(half, -1)  # [j, v]
    root = base.root + log_h_half
    log_h_root = torch.logsumexp(root.flatten(), 0)
    return TwoJumpChain(root - log_h_root, half - log_h_half[..., None])


def kl_divergence(log_p: Tensor, log_q: Tensor) -> float:
    """Exact :math:`KL(p\\|q) = \\sum p (\\log p - \\log q)` of two distributions given in log space."""
    p = log_p.exp()
    terms = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))
    return float(terms.sum())


def jump_kls(target: TwoJumpChain, model: TwoJumpChain) -> tuple[float, float]:
    """Exact :math:`KL(p^*_s \\| p^u_s)` after jump 1 (182 half-masked states) and jump 2 (the grid)."""
    kl_first = kl_divergence(target.root.flatten(), model.root.flatten())
    kl_final = kl_divergence(final_log_marginal(target).flatten(), final_log_marginal(model).flatten())
    return kl_first, kl_final


def sample_categorical(log_probs: Tensor, shape: tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
    """Draw ``shape`` indices from one normalised distribution ``log_probs[n]`` (inverse CDF)."""
    cdf = torch.cumsum(log_probs.exp(), 0)
    uniform = torch.rand(shape, generator=generator, dtype=cdf.dtype) * cdf[-1]
    return torch.searchsorted(cdf, uniform.flatten()).clamp_max(len(cdf) - 1).view(shape)


def sample_rows(log_probs: Tensor, rows: tuple[Tensor, ...], generator: torch.Generator | None = None) -> Tensor:
    """One draw from each distribution ``log_probs[rows][..., n]`` (normalised rows, inverse CDF)."""
    cdf = torch.cumsum(log_probs.exp(), -1)[rows]
    uniform = torch.rand(cdf.shape[:-1], generator=generator, dtype=cdf.dtype) * cdf[..., -1]
    drawn = torch.searchsorted(cdf, uniform.unsqueeze(-1)).squeeze(-1)
    return drawn.clamp_max(cdf.shape[-1] - 1)
