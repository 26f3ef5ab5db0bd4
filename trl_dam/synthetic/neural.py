r"""A small neural denoiser for the grid task: the path an LLM takes.

Instead of a table, an MLP maps a state ``x`` in :math:`\{m, 1..M\}^2` to per-position logits, and the jump chain is
the masked-LM factorisation :math:`Q^\theta(i, v|x) = \pi(i|x)\, p_\theta(v|x, i)` with a uniform :math:`\pi`. Training
goes through the generic sampler (:func:`trl_dam.core.sampling.sample_ctmc`) and the generic jump log-probs, exactly
as DAMTrainer does for a transformer.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from trl_dam.core.adjoint import effective_sample_size, path_log_ratio, self_normalized_weights
from trl_dam.core.losses import dam_loss
from trl_dam.core.policy_gradient import diffu_grpo_loss, group_normalized_advantages, mean_field_token_log_probs
from trl_dam.core.sampling import jump_log_probs, sample_ctmc, token_log_probs
from trl_dam.synthetic.chain import TwoJumpChain


class GridDenoiser(torch.nn.Module):
    """MLP denoiser: ``x[batch, 2]`` (tokens ``0..M-1``, mask ``M``) -> logits ``[batch, 2, M + 1]``."""

    def __init__(self, size: int, hidden: int = 256, embedding: int = 64):
        super().__init__()
        self.size = size
        self.mask_token_id = size
        self.embed = torch.nn.ModuleList([torch.nn.Embedding(size + 1, embedding) for _ in range(2)])
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(2 * embedding, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, 2 * (size + 1)),
        )

    def forward(self, x: Tensor) -> Tensor:
        features = torch.cat([self.embed[0](x[:, 0]), self.embed[1](x[:, 1])], -1)
        return self.mlp(features).view(-1, 2, self.size + 1).double()

    def all_states(self) -> Tensor:
        """The all-masked state, then ``(v, m)`` for every ``v``, then ``(m, v)``: ``[1 + 2M, 2]``."""
        m, tokens = self.mask_token_id, torch.arange(self.size)
        masks = torch.full_like(tokens, m)
        return torch.cat([torch.tensor([[m, m]]), torch.stack([tokens, masks], 1), torch.stack([masks, tokens], 1)])

    def chain(self) -> TwoJumpChain:
        """Enumerate the network's jump chain on every state (``1 + 2M`` forward rows)."""
        logp = token_log_probs(self(self.all_states()), self.mask_token_id)[..., : self.size]
        root = logp[0] - math.log(2.0)
        half = torch.stack([logp[1 : 1 + self.size, 1], logp[1 + self.size :, 0]])
        return TwoJumpChain(root, half)


def distill_to_chain(net: GridDenoiser, target: TwoJumpChain, steps: int = 600, lr: float = 3e-3) -> float:
    """Fit ``net`` to a uniform-order chain by full-batch KL on every state; returns the final mean KL."""
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    root_target = torch.log_softmax(target.root, -1)  # p^{(i)}(v): the per-position law at the root
    loss = torch.tensor(0.0)
    for _ in range(steps):
        chain = net.chain()
        root = torch.log_softmax(chain.root, -1)
        loss = (root_target.exp() * (root_target - root)).sum(-1).mean() + (
            target.half.exp() * (target.half - chain.half)
        ).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def _remask(x1: Tensor, mask_token_id: int, generator: torch.Generator) -> Tensor:
    """Keep ``n ~ U{0, 1}`` of the two tokens of each row (a uniformly random one when ``n = 1``)."""
    keep_one = torch.rand(x1.shape[0], generator=generator) < 0.5
    kept = torch.randint(2, (x1.shape[0],), generator=generator)
    state = torch.full_like(x1, mask_token_id)
    rows = keep_one.nonzero(as_tuple=True)[0]
    state[rows, kept[rows]] = x1[rows, kept[rows]]
    return state


def dam_loss_neural(
    net: GridDenoiser,
    base: GridDenoiser,
    reward: Tensor,
    num_states: int,
    k: int,
    beta: float,
    generator: torch.Generator,
    estimator: str = "importance_weighted",
    loss_type: str = "gkl",
) -> tuple[Tensor, dict[str, float]]:
    """On-policy DAM with the generic sampler; see :func:`trl_dam.synthetic.tabular.dam_loss_tabular`."""
    mask = net.mask_token_id
    was_training = net.training
    net.eval()
    x1 = sample_ctmc(net, torch.full((num_states, 2), mask), mask, generator=generator).final
    x_t = _remask(x1, mask, generator).repeat_interleave(k, 0)
    rollout = sample_ctmc(net, x_t, mask, reference_logits_fn=base, generator=generator)
    net.train(was_training)
    rewards = reward[rollout.final[:, 0], rollout.final[:, 1]]
    log_weights = path_log_ratio(rollout.logp_reference, rollout.logp_policy, rollout.step_mask) + rewards / beta
    log_weights = log_weights.view(num_states, k)
    if estimator == "importance_weighted":
        weights = self_normalized_weights(log_weights)
    elif estimator == "analytic":
        source = reward[x1[:, 0], x1[:, 1]]
        weights = torch.exp(log_weights - source[:, None] / beta)
    else:
        raise ValueError(f"unknown estimator {estimator!r}")
    log_model = jump_log_probs(net, x_t, rollout.positions[:, 0], rollout.tokens[:, 0], mask)
    losses = dam_loss(log_model, rollout.logp_policy[:, 0], weights.flatten(), loss_type)
    return losses.mean(), {"ess_fraction": float(effective_sample_size(log_weights).mean() / k)}


def d1_loss_neural(
    net: GridDenoiser, base: GridDenoiser, reward: Tensor, num_prompts: int, k: int, kl_beta: float, generator
) -> Tensor:
    """diffu-GRPO with the generic mean-field likelihood (:func:`mean_field_token_log_probs`)."""
    mask = net.mask_token_id
    with torch.no_grad():
        final = sample_ctmc(net, torch.full((num_prompts * k, 2), mask), mask, generator=generator).final
        completion = torch.ones_like(final, dtype=torch.bool)
        ref = mean_field_token_log_probs(base, final, completion, mask, p_mask_prompt=0.0)
    logp = mean_field_token_log_probs(net, final, completion, mask, p_mask_prompt=0.0)
    advantages = group_normalized_advantages(reward[final[:, 0], final[:, 1]], k, scale_rewards=False)
    return diffu_grpo_loss(logp, logp.detach(), advantages, completion, beta=kl_beta, ref_logp=ref)
