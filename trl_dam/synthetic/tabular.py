r"""Tabular DAM, D1 and SVDD on the two-token grid (paper App. C.1).

The tabular model holds logits for every state over its valid moves: a joint (position x token) softmax at the
all-masked state and a token softmax at each of the ``2M`` half-masked states. It is initialised at the base. Each
training iteration is on-policy (no replay buffer), as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from trl_dam.core.adjoint import effective_sample_size, self_normalized_weights
from trl_dam.core.losses import dam_loss
from trl_dam.core.policy_gradient import diffu_grpo_loss, group_normalized_advantages
from trl_dam.synthetic.chain import TwoJumpChain, sample_categorical, sample_rows


class TabularModel(torch.nn.Module):
    """Free logits for every state of the two-token chain, initialised at ``init``."""

    def __init__(self, init: TwoJumpChain):
        super().__init__()
        self.root_logits = torch.nn.Parameter(init.root.flatten().clone())
        self.half_logits = torch.nn.Parameter(init.half.clone())

    def chain(self) -> TwoJumpChain:
        size = self.half_logits.shape[-1]
        return TwoJumpChain(
            torch.log_softmax(self.root_logits, 0).view(2, size), torch.log_softmax(self.half_logits, -1)
        )


@dataclass
class Rollouts:
    """``K`` rollouts from each of ``G`` states. ``first`` indexes the first jump, ``final_a/b`` the final grid cell.

    ``log_ratio`` is :math:`\\log \\rho` over the whole path and ``log_ratio_first`` over its first jump only.
    ``second`` is ``(position, token, other)`` of the second jump of rollouts that start at the all-masked state.
    """

    first: Tensor
    final_a: Tensor
    final_b: Tensor
    log_ratio: Tensor
    log_ratio_first: Tensor
    logp_sampler_first: Tensor
    second: tuple[Tensor, Tensor, Tensor] | None = None


def sample_final(chain: TwoJumpChain, num: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Draw ``num`` complete states ``(a, b)`` from ``chain`` (two jumps)."""
    size = chain.size
    first = sample_categorical(chain.root.flatten(), (num,), generator)
    position, token = first // size, first % size
    other = sample_rows(chain.half, (position, token), generator)
    return torch.where(position == 0, token, other), torch.where(position == 0, other, token)


def _rollouts_from_root(policy: TwoJumpChain, base: TwoJumpChain, groups: int, k: int, generator) -> Rollouts:
    size = policy.size
    first = sample_categorical(policy.root.flatten(), (groups, k), generator)
    position, token = first // size, first % size
    other = sample_rows(policy.half, (position, token), generator)
    ratio_first = base.root.flatten()[first] - policy.root.flatten()[first]
    ratio_second = base.half[position, token, other] - policy.half[position, token, other]
    final_a = torch.where(position == 0, token, other)
    final_b = torch.where(position == 0, other, token)
    return Rollouts(
        first,
        final_a,
        final_b,
        ratio_first + ratio_second,
        ratio_first,
        policy.root.flatten()[first],
        (position, token, other),
    )


def _rollouts_from_half(
    policy: TwoJumpChain, base: TwoJumpChain, position: Tensor, token: Tensor, k: int, generator
) -> Rollouts:
    pos = position[:, None].expand(-1, k)
    tok = token[:, None].expand(-1, k)
    other = sample_rows(policy.half, (pos, tok), generator)
    ratio = base.half[pos, tok, other] - policy.half[pos, tok, other]
    final_a = torch.where(pos == 0, tok, other)
    final_b = torch.where(pos == 0, other, tok)
    return Rollouts(other, final_a, final_b, ratio, ratio, policy.half[pos, tok, other])


@dataclass
class DAMSettings:
    """Hyper-parameters of one tabular DAM run (see :func:`dam_loss_tabular`)."""

    num_generations: int = 64
    num_states: int = 64
    beta: float = 1.0
    estimator: str = "importance_weighted"
    loss_type: str = "gkl"
    train_all_jumps: bool = False


def dam_loss_tabular(
    model: TabularModel, base: TwoJumpChain, reward: Tensor, settings: DAMSettings, generator: torch.Generator
) -> tuple[Tensor, dict[str, float]]:
    r"""One on-policy DAM loss (paper Algorithm 1 without buffer) on ``settings.num_states`` training states.

    1. :math:`X_1 \sim p^{\bar u}`; re-mask it: keep :math:`n \sim U\{0, 1\}` of its tokens (a random subset).
    2. From each :math:`X_t` draw ``K`` rollouts :math:`(Y_k, Z_k)` from :math:`\bar u`.
    3. Weights: importance-weighted :math:`W_k = K\,\mathrm{softmax}_k(\log\rho_k + r(Z_k)/\beta)`, or analytic
       :math:`W_k = \rho_k\, e^{(r(Z_k) - r(X_1))/\beta}` (Prop. 2.3 with :math:`X_1` the re-masked sample).
    4. :func:`trl_dam.core.losses.dam_loss` on every first jump, averaged.

    With ``train_all_jumps`` the second jump of each rollout from the all-masked state is trained too, with the same
    weight :math:`W_k`. Why that weight: the target of a later jump :math:`x_s \to x_{s+1}` is
    :math:`\frac{Q^{\mathrm{base}}}{Q^{\bar u}}(x_{s+1}|x_s)\,h(x_{s+1})/h(x_s)`; estimating :math:`h(x_{s+1})` by the
    rest of the rollout and :math:`h(x_s)` by :math:`h(X_t)\prod_{j<s} Q^{\bar u}/Q^{\mathrm{base}}` (the model's own
    first jumps, exact at the optimum) gives :math:`W_k` for every jump. The summed gradient
    :math:`\frac1K\sum_k (1 - W_k)\nabla \log p^\theta(\text{path}_k)` is the self-normalised gradient of the path-space
    cross-entropy :math:`KL(p^* \| p^\theta)`, so the fixed point is still :math:`p^*`.
    """
    chain = model.chain()
    policy = TwoJumpChain(chain.root.detach(), chain.half.detach())
    k = settings.num_generations
    source_a, source_b = sample_final(policy, settings.num_states, generator)
    source_reward = reward[source_a, source_b]
    revealed = torch.rand(settings.num_states, generator=generator) < 0.5
    n_root = int((~revealed).sum())
    position = torch.randint(2, (settings.num_states,), generator=generator)[revealed]
    token = torch.where(position == 0, source_a[revealed], source_b[revealed])
    groups = [
        (_rollouts_from_root(policy, base, n_root, k, generator), chain.root.flatten(), source_reward[~revealed]),
        (_rollouts_from_half(policy, base, position, token, k, generator), chain.half, source_reward[revealed]),
    ]
    losses, log_weights_all = [], []
    for index, (rollouts, logits, source) in enumerate(groups):
        if rollouts.first.numel() == 0:
            continue
        log_weights = rollouts.log_ratio + reward[rollouts.final_a, rollouts.final_b] / settings.beta
        if settings.estimator == "importance_weighted":
            weights = self_normalized_weights(log_weights)
        elif settings.estimator == "analytic":
            weights = torch.exp(log_weights - source[:, None] / settings.beta)
        else:
            raise ValueError(f"unknown estimator {settings.estimator!r}")
        if index == 0:
            log_model = logits[rollouts.first]
        else:
            log_model = logits[position[:, None].expand(-1, k), token[:, None].expand(-1, k), rollouts.first]
        losses.append(dam_loss(log_model, rollouts.logp_sampler_first, weights, settings.loss_type).flatten())
        if settings.train_all_jumps and rollouts.second is not None:
            second_position, second_token, other = rollouts.second
            log_model_second = chain.half[second_position, second_token, other]
            log_sampler_second = policy.half[second_position, second_token, other]
            losses.append(dam_loss(log_model_second, log_sampler_second, weights, settings.loss_type).flatten())
        log_weights_all.append(log_weights)
    ess = torch.cat([effective_sample_size(w) for w in log_weights_all]).mean() / k
    return torch.cat(losses).mean(), {"ess_fraction": float(ess)}


def d1_loss_tabular(
    model: TabularModel, base: TwoJumpChain, reward: Tensor, num_prompts: int, k: int, kl_beta: float, generator
) -> Tensor:
    r"""diffu-GRPO on the grid: ``K`` completions of the all-masked prompt, group-normalised advantages, and D1's
    one-step mean-field likelihood read at the all-masked state,

    .. math:: \log \pi_\theta(a, b) \approx \log p_\theta(a \mid mm, 0) + \log p_\theta(b \mid mm, 1),

    where :math:`p_\theta(\cdot \mid mm, i)` is the token softmax of the root logits at position ``i``. One policy
    update per batch (``mu = 1``), so the clipped ratio equals one at the update; k3 KL to the base with ``kl_beta``.
    """
    chain = model.chain()
    policy = TwoJumpChain(chain.root.detach(), chain.half.detach())
    size = policy.size
    a, b = sample_final(policy, num_prompts * k, generator)
    advantages = group_normalized_advantages(reward[a, b].float(), k, scale_rewards=False)
    per_position = torch.log_softmax(model.root_logits.view(2, size), -1)
    base_position = torch.log_softmax(base.root, -1)
    logp = torch.stack([per_position[0, a], per_position[1, b]], 1)
    ref = torch.stack([base_position[0, a], base_position[1, b]], 1)
    mask = torch.ones_like(logp, dtype=torch.bool)
    return diffu_grpo_loss(logp, logp.detach(), advantages.to(logp.dtype), mask, beta=kl_beta, ref_logp=ref)


class SVDDValue:
    r"""Monte-Carlo regression of the value of half-masked states from base rollouts (SVDD-MC, tabular).

    The least-squares regression of :math:`r(X_1)` on the state :math:`y` passed through is, for a table, the
    running mean :math:`\hat v(y) \approx E_{\mathrm{base}}[r(X_1) \mid y]` — SVDD's small-alpha value.
    """

    def __init__(self, reward: Tensor):
        self.reward = reward
        self.total = torch.zeros(2, reward.shape[0], dtype=torch.float64)
        self.count = torch.zeros(2, reward.shape[0], dtype=torch.float64)

    def update(self, base: TwoJumpChain, num: int, generator: torch.Generator) -> None:
        """Add ``num`` base rollouts to the running means."""
        size = base.size
        first = sample_categorical(base.root.flatten(), (num,), generator)
        position, token = first // size, first % size
        other = sample_rows(base.half, (position, token), generator)
        values = torch.where(position == 0, self.reward[token, other], self.reward[other, token])
        self.total.index_put_((position, token), values, accumulate=True)
        self.count.index_put_((position, token), torch.ones_like(values), accumulate=True)

    def table(self) -> Tensor:
        return self.total / self.count.clamp_min(1)


def _selection_log_probs(log_q: Tensor, values: Tensor, num_candidates: int, alpha: float, draws: int, generator):
    r"""Exact law of "draw ``M`` candidates from ``q``, keep one with probability :math:`\propto e^{v/\alpha}`".

    .. math:: P(y) = M\, q(y)\, E\Big[\frac{e^{v(y)/\alpha}}{e^{v(y)/\alpha} + S}\Big], \qquad
              S = \sum_{j=2}^{M} e^{v(Y_j)/\alpha},\ Y_j \sim q

    The expectation over the ``M - 1`` competitors is averaged over ``draws`` samples of :math:`S` (rows of
    ``log_q[..., n]`` are independent states).
    """
    shape = log_q.shape
    if num_candidates == 1:
        return log_q
    flat_q, flat_v = log_q.reshape(-1, shape[-1]), values.reshape(-1, shape[-1]) / alpha
    competitors = torch.multinomial(flat_q.exp(), draws * (num_candidates - 1), replacement=True, generator=generator)
    competitor_values = flat_v.gather(1, competitors).view(-1, draws, num_candidates - 1)
    log_s = torch.logsumexp(competitor_values, -1)  # [rows, draws]
    keep = torch.sigmoid(flat_v[:, :, None] - log_s[:, None, :]).mean(-1)  # [rows, n]
    log_p = flat_q + torch.log(keep) + math.log(num_candidates)
    return (log_p - torch.logsumexp(log_p, -1, keepdim=True)).view(shape)


def svdd_chain(
    base: TwoJumpChain, value: Tensor, reward: Tensor, num_candidates: int, alpha: float, generator, draws: int = 512
) -> TwoJumpChain:
    """The two-jump chain that SVDD decoding of ``base`` with value table ``value[2, M]`` samples from."""
    root = _selection_log_probs(base.root.flatten(), value.flatten(), num_candidates, alpha, draws, generator)
    final_values = torch.stack([reward, reward.T])  # [j, v, w]
    half = _selection_log_probs(base.half, final_values, num_candidates, alpha, draws, generator)
    return TwoJumpChain(root.view_as(base.root), half)
