r"""How far DAM's target :math:`p^*(x) \propto p^{\mathrm{base}}(x)\, e^{r(x)/\beta}` is from the base: the
:math:`\beta` ceiling.

With :math:`\lambda = 1/\beta` and the cumulant :math:`\psi(\lambda) = \log \mathbb{E}_{\mathrm{base}}[e^{\lambda r}]`,

.. math:: \mathrm{KL}(p^* \| p^{\mathrm{base}}) = \lambda\psi'(\lambda) - \psi(\lambda)
          = \int_0^\lambda s\, \psi''(s)\, ds, \qquad
          \mathbb{E}_{p^*}[r] - \mathbb{E}_{\mathrm{base}}[r] = \int_0^\lambda \psi''(s)\, ds,

and :math:`\psi''(s)` is the variance of :math:`r` under the tilt by :math:`s`, at most :math:`\Delta^2/4` for rewards
spread over an interval of width :math:`\Delta` (Popoviciu). Hence (Hoeffding's lemma, then Pinsker)

.. math:: \mathrm{KL}(p^* \| p^{\mathrm{base}}) \le \frac{\Delta^2}{8\beta^2}, \qquad
          \mathrm{TV}(p^*, p^{\mathrm{base}}) \le \frac{\Delta}{4\beta}, \qquad
          \frac{\mathbb{E}_{p^*}[r] - \mathbb{E}_{\mathrm{base}}[r]}{\Delta} \le \frac{\Delta}{4\beta}.

To second order :math:`\mathrm{KL} \approx \mathrm{Var}(r)/(2\beta^2)`: a :math:`\beta` large against the reward's
spread leaves :math:`p^*` indistinguishable from the base, and training cannot raise the reward whatever the optimiser
does. `tilt_kl` computes the KL exactly for a distribution given by samples or log-probabilities.
"""

from __future__ import annotations

import torch
from torch import Tensor


def tilt_kl(rewards: Tensor, beta: float, log_base: Tensor | None = None) -> Tensor:
    r""":math:`\mathrm{KL}(p^* \| p)` for :math:`p^* \propto p\, e^{r/\beta}` on a finite support, in nats.

    .. math:: \mathrm{KL} = \sum_i p^*_i \log\frac{p^*_i}{p_i}, \qquad
              \log\frac{p^*_i}{p_i} = \frac{r_i}{\beta} - \log\sum_j p_j e^{r_j/\beta}

    Args:
        rewards (`FloatTensor[..., n]`): rewards of the ``n`` outcomes (or samples).
        beta (`float`): temperature :math:`\beta > 0`.
        log_base (`FloatTensor[..., n]`, *optional*): :math:`\log p_i`; uniform when `None` (``n`` samples of
            :math:`p`, so the result is the plug-in estimate of the KL on them).
    Returns:
        `FloatTensor[...]`.
    """
    if log_base is None:
        log_base = torch.full_like(rewards, -torch.log(torch.tensor(float(rewards.shape[-1]))).item())
    log_ratio = rewards / beta - torch.logsumexp(log_base + rewards / beta, dim=-1, keepdim=True)
    return ((log_base + log_ratio).exp() * log_ratio).sum(-1)


def tilt_kl_bound(spread: float, beta: float) -> float:
    r"""Upper bound :math:`\Delta^2 / (8\beta^2)` on :math:`\mathrm{KL}(p^* \| p^{\mathrm{base}})` for rewards in an
    interval of width :math:`\Delta` (see the module docstring)."""
    return spread**2 / (8 * beta**2)


def target_reward_estimate(weights: Tensor, rewards: Tensor) -> Tensor:
    r"""Importance-weighted reward under the target, :math:`\frac1K \sum_k W_k r_k` per state.

    With DAM's self-normalised weights :math:`W_k = K\,\mathrm{softmax}_k(\log\rho_k + r_k/\beta)` this is the
    self-normalised importance-sampling estimate of :math:`\mathbb{E}_{p^*(\cdot \mid X_t)}[r]`, the reward the
    current target would reach from :math:`X_t` (consistent as :math:`K \to \infty`).

    Args:
        weights (`FloatTensor[..., K]`): the rollouts' weights :math:`W_k`.
        rewards (`FloatTensor[..., K]`): their rewards :math:`r_k`.
    Returns:
        `FloatTensor[...]`.
    """
    return (weights * rewards).mean(-1)
