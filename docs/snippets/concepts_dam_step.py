"""One DAM step written out with `trl_dam.core`, on a toy denoiser (this is what `DAMTrainer` does per state)."""

import copy

import torch
from torch import nn

from trl_dam.core import (
    dam_loss,
    effective_sample_size,
    gather_jump_log_probs,
    importance_log_weights,
    path_log_ratio,
    remask,
    sample_ctmc,
    self_normalized_weights,
)

torch.manual_seed(0)
VOCAB, LENGTH, MASK, K, BETA = 6, 5, 0, 8, 0.1  # token 0 is the mask; K rollouts per training state


class ToyDenoiser(nn.Module):
    """logits[b, i] from the token at i and the mean of the whole state (so the order of unmasking matters)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.out = nn.Linear(32, VOCAB)

    def forward(self, x):
        h = self.embed(x)
        return self.out(torch.cat([h, h.mean(1, keepdim=True).expand_as(h)], dim=-1))


base = ToyDenoiser().requires_grad_(False)  # p_base: frozen, never synced
policy = copy.deepcopy(base).requires_grad_(True)  # u_theta, initialised at the base
with torch.no_grad():
    policy.out.bias[3] += 0.5  # pretend some training already happened, so the path ratios are not all 1


def reward(x):  # r(X1): fraction of positions holding token 3
    return (x == 3).float().mean(-1)


# 1. X1 ~ p^u from the all-masked state, then a training state X_t (keep n ~ U{0..N-1} of its tokens).
x1 = sample_ctmc(policy, torch.zeros(4, LENGTH, dtype=torch.long), MASK).final
x_t, _ = remask(x1, torch.ones_like(x1, dtype=torch.bool), MASK)

# 2. K rollouts of the current model from every X_t, recording policy and base log-probs at every jump.
rollouts = sample_ctmc(policy, x_t.repeat_interleave(K, 0), MASK, reference_logits_fn=base)

# 3. Importance-weighted adjoint: W_k = K softmax_k(log rho_k + r_k / beta), rho_k = p_base(path) / p_u(path).
log_rho = path_log_ratio(rollouts.logp_reference, rollouts.logp_policy, rollouts.step_mask).view(-1, K)
log_weights = importance_log_weights(log_rho, reward(rollouts.final).view(-1, K), BETA)
weights = self_normalized_weights(log_weights)
print("ESS / K per state:", (effective_sample_size(log_weights) / K).tolist())

# 4. gKL matching loss on the K first jumps Y_k of each state, all read from ONE forward of the policy on X_t.
positions = rollouts.positions[:, 0].view(-1, K, 1)
tokens = rollouts.tokens[:, 0].view(-1, K, 1)
log_q_model = gather_jump_log_probs(policy(x_t), positions, tokens, MASK)  # a_k = log Q^theta(Y_k | X_t)
log_q_sampler = rollouts.logp_policy[:, 0].view(-1, K)  # b_k, detached
loss = dam_loss(log_q_model, log_q_sampler, weights).mean()
loss.backward()

# At theta = u (sampled at temperature 1) the gradient is mean_k (1 - W_k) grad a_k: raise the jumps whose rollouts beat the average.
grad = policy.out.weight.grad.clone()
policy.zero_grad()
((1 - weights) * gather_jump_log_probs(policy(x_t), positions, tokens, MASK)).mean().backward()
torch.testing.assert_close(grad, policy.out.weight.grad)
print(f"loss {loss.item():.4f}; gradient matches mean_k (1 - W_k) grad log Q(Y_k | X_t)")
