r"""The "all positions" DAM target: train every masked position of :math:`X_t` from one forward.

The paper's Algorithm 1 trains, per training state :math:`X_t`, the first jump :math:`Y_k` of each of the ``K``
rollouts: ``K`` tokens per state. The rollouts reveal much more: the final state :math:`Z_k` of every rollout fills
*every* masked position. This module trains all of them, from the same single forward of the model on :math:`X_t`.

Per rollout :math:`k` and masked position :math:`i` of :math:`X_t`, with the weights :math:`W_k` of
:func:`trl_dam.core.adjoint.self_normalized_weights`,

.. math:: a_{k,i} = \log p_\theta(Z_k[i] \mid X_t, i), \qquad b_{k,i} = \log p_{\bar u}(Z_k[i] \mid X_t, i),
          \qquad \ell_{k,i} = e^{a_{k,i} - b_{k,i}} - W_k + W_k(\log W_k + b_{k,i} - a_{k,i}),

the gKL form of :func:`trl_dam.core.losses.dam_loss` per rollout and position. At :math:`\theta = \bar u`,
:math:`\nabla_a \ell = 1 - W_k`, and because :math:`\frac1K\sum_k W_k = 1` the gradient with respect to the logits
:math:`z_i` of position :math:`i` is exactly

.. math:: \nabla_{z_i} \frac1K \sum_k \ell_{k,i} = \frac1K \sum_k (1 - W_k)\, e_{Z_k[i]},

zero for every sample when all weights equal one (the zero variance at the optimum of the first-jump form is kept;
a cross-entropy towards the weighted histogram :math:`\frac1K\sum_k W_k e_{Z_k[i]}` loses it).

**Fixed point.** Write :math:`P^{u}_x(Z_i = v)` for the law of token :math:`i` at the end of a rollout of chain
:math:`u` from :math:`x` and :math:`p^*_x(z) \propto p^{\mathrm{base}}_{1|t}(z \mid x)\, e^{r(z)/\beta}`. With exact
weights (:math:`K \to \infty`, :math:`W = p^*_x / p^{\bar u}_x`) the expected logit gradient at :math:`\theta = \bar u` is

.. math:: \mathbb{E}\big[\nabla_{z_i}\big] = P^{\bar u}_x(Z_i = \cdot) - p^*_x(Z_i = \cdot),

so the on-policy iteration stops where, from every state :math:`x` and at every masked :math:`i`, the model's own
rollouts have the marginals of :math:`p^*_x`.

* **Order-consistent base** (:math:`p_{\mathrm{base}}(v|x,i) = p^{\mathrm{base}}_x(Z_i = v)`: the denoiser is the
  conditional marginal of its own final law). Then :math:`h(x) = \sum_v p_{\mathrm{base}}(v|x,i)\,h(x[i \leftarrow v])`
  for every :math:`i`, so the Doob jump stays a masked LM (uniform position, per-position softmax) with
  :math:`Q^*(v|x,i) = p^*_x(Z_i = v)`: the Doob-optimal jump to :math:`v` at :math:`i` is the :math:`p^*`-marginal of
  :math:`x_i` given :math:`x`, estimated at every position at once by :math:`\frac1K \sum_k W_k 1\{Z_k[i] = v\}`.
  :math:`Q^*` is order-consistent too (its rollouts from :math:`x` have law :math:`p^*_x`), so it is a zero of the
  expected gradient above: the same fixed point as the first-jump form, final law :math:`p^*`.
* **Bias for a base that is not order-consistent** (any trained network, strictly). :math:`\sum_v
  p_{\mathrm{base}}(v|x,i)\,h(x[i \leftarrow v])/h(x)` then depends on :math:`i`: the Doob chain moves the position law
  off uniform and leaves the masked-LM family. The first-jump form's fixed point is the per-position normalised Doob
  jump :math:`\propto p_{\mathrm{base}}(v|x,i)\,h(x[i \leftarrow v])`; this form's is the marginal matching above
  against :math:`p^*_x \propto p^{\mathrm{base}}_{1|t}(\cdot|x)\,e^{r/\beta}` (the law of the *base chain* from
  :math:`x`, not :math:`p^*` conditioned on :math:`x`). Neither has final law exactly :math:`p^*`, and the two differ;
  both biases vanish with the base's order inconsistency. ``tests/test_core_all_positions.py`` checks each statement
  by enumeration.

With finite ``K`` both forms inherit the :math:`O(1/K)` bias of the self-normalised weights.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trl_dam.core.losses import dam_loss
from trl_dam.core.sampling import token_log_probs


def all_positions_log_probs(logits: Tensor, finals: Tensor, mask_token_id: int) -> Tensor:
    r""":math:`\log p(Z_k[i] \mid X_t, i)` for every rollout and position, read from one forward on :math:`X_t`.

    Args:
        logits (`FloatTensor[states, length, vocab]`): denoiser logits on the training states (gradients flow).
        finals (`LongTensor[states, K, length]`): final states :math:`Z_k` of the ``K`` rollouts of each state.
        mask_token_id (`int`): excluded from the token support.
    Returns:
        `FloatTensor[states, K, length]`; only entries at masked positions of :math:`X_t` are meaningful.
    """
    if finals.dim() != 3 or finals.shape[0] != logits.shape[0] or finals.shape[2] != logits.shape[1]:
        raise ValueError(
            f"finals must be [states, K, length] matching logits [states, length, vocab]; got finals "
            f"{tuple(finals.shape)} and logits {tuple(logits.shape)}"
        )
    logp = token_log_probs(logits, mask_token_id)  # [S, L, V]
    index = finals.clamp(min=0).transpose(1, 2)  # [S, L, K]
    return logp.gather(-1, index).transpose(1, 2)


def all_positions_dam_loss(
    logp_model: Tensor, logp_sampler: Tensor, weights: Tensor, masked: Tensor, loss_type: str = "gkl"
) -> Tensor:
    r"""Per-state all-positions DAM loss: :math:`\frac{1}{|M|}\sum_{i \in M} \frac1K \sum_k \ell_{k,i}` (see module).

    :math:`M` is the set of masked positions of :math:`X_t`; averaging over it keeps the scale of the first-jump
    loss, which trains one uniformly random position of :math:`M` per rollout.

    Args:
        logp_model (`FloatTensor[states, K, length]`): :math:`a_{k,i}` (requires grad).
        logp_sampler (`FloatTensor[states, K, length]`): :math:`b_{k,i}` of the sampling model (a constant).
        weights (`FloatTensor[states, K]`): :math:`W_k` (a constant).
        masked (`BoolTensor[states, length]`): masked positions of :math:`X_t`.
        loss_type (`str`): ``"gkl"`` or ``"l2"``, as in :func:`trl_dam.core.losses.dam_loss`.
    Returns:
        `FloatTensor[states]`.
    """
    if weights.shape != logp_model.shape[:2]:
        raise ValueError(f"weights must be [states, K] = {tuple(logp_model.shape[:2])}, got {tuple(weights.shape)}")
    per = dam_loss(logp_model, logp_sampler, weights.unsqueeze(-1).expand_as(logp_model), loss_type)
    per = torch.where(masked.unsqueeze(1), per, torch.zeros_like(per))
    count = masked.sum(-1).clamp(min=1)
    return per.mean(1).sum(-1) / count
