r"""One training step of each candidate update on sequences of any length, through the generic core pieces.

Every DAM variant starts the same way, as :class:`~trl_dam.trainers.DAMTrainer` does: ``S`` on-policy samples
:math:`X_1`, re-masked into training states :math:`X_t` (:func:`trl_dam.core.masking.remask`), ``K`` policy rollouts
from each with the reference log-probs on the way (:func:`trl_dam.core.sampling.sample_ctmc`), one reward call per
rollout, and the weights :math:`W_k = K\,\mathrm{softmax}_k(\log\rho_k + r_k/\beta)`. They differ in what is trained:

* ``first_jump`` — the paper's Algorithm 1: the ``K`` first jumps :math:`Y_k`, from one forward on :math:`X_t`.
* ``all_jumps`` — every jump :math:`x_s \to x_{s+1}` of every rollout, each with its rollout's :math:`W_k`; a forward
  on every state visited (``S K`` times the steps). Per visited state the token softmax makes the minimiser
  :math:`\propto` the Doob target whatever the reach weight, so the fixed point is kept.
* ``all_positions`` — every masked position of :math:`X_t` towards the rollouts' final tokens
  (:mod:`trl_dam.core.all_positions`), from the same one forward on :math:`X_t`.

``d1`` is diffu-GRPO: ``S`` groups of ``K`` completions from the all-masked state, group-normalised advantages and
the one-step mean-field likelihood.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trl_dam.core.adjoint import importance_log_weights, path_log_ratio, self_normalized_weights
from trl_dam.core.all_positions import all_positions_dam_loss, all_positions_log_probs
from trl_dam.core.losses import dam_loss
from trl_dam.core.masking import remask
from trl_dam.core.policy_gradient import diffu_grpo_loss, group_normalized_advantages, mean_field_token_log_probs
from trl_dam.core.sampling import gather_jump_log_probs, sample_ctmc

DAM_TARGETS = ("first_jump", "all_jumps", "all_positions")


class ForwardCounter:
    """Wraps a denoiser and counts its calls (sequential forwards) and rows (sequence-forwards)."""

    def __init__(self, logits_fn):
        self.logits_fn, self.calls, self.rows = logits_fn, 0, 0

    def __call__(self, x: Tensor) -> Tensor:
        self.calls += 1
        self.rows += x.shape[0]
        return self.logits_fn(x)

    def __getattr__(self, name):
        # Attributes the samplers read (mask_token_id, length) come from the wrapped denoiser.
        if name == "logits_fn":
            raise AttributeError(name)
        return getattr(self.logits_fn, name)


def dam_step_loss(
    policy, reference, reward_fn, num_states: int, k: int, beta: float, generator, target: str = "first_jump"
) -> tuple[Tensor, int]:
    """On-policy DAM loss of one step with the given ``target``; returns ``(loss, reward calls)``.

    ``policy`` is called with gradients only for the training forward; sampling runs under ``no_grad``.
    """
    if target not in DAM_TARGETS:
        raise ValueError(f"target must be one of {DAM_TARGETS}, got {target!r}")
    mask, length = policy.mask_token_id, policy.length
    with torch.no_grad():
        x1 = sample_ctmc(policy, torch.full((num_states, length), mask), mask, generator=generator).final
        x_t, _ = remask(x1, torch.ones_like(x1, dtype=torch.bool), mask, generator)
        rollout = sample_ctmc(
            policy, x_t.repeat_interleave(k, 0), mask, reference_logits_fn=reference, generator=generator
        )
        rewards = reward_fn(rollout.final)
        log_ratio = path_log_ratio(rollout.logp_reference, rollout.logp_policy, rollout.step_mask)
        weights = self_normalized_weights(importance_log_weights(log_ratio, rewards, beta).view(num_states, k))
    if target == "first_jump":
        first = rollout.positions[:, 0].view(num_states, k, -1), rollout.tokens[:, 0].view(num_states, k, -1)
        logp_model = gather_jump_log_probs(policy(x_t), *first, mask)
        loss = dam_loss(logp_model, rollout.logp_policy[:, 0].view(num_states, k), weights).mean()
    elif target == "all_positions":
        logp_model = all_positions_log_probs(policy(x_t), rollout.final.view(num_states, k, length), mask)
        # On-policy: the sampler is the current model, so b = a detached (exactly log p_ubar(Z_k[i] | X_t, i)).
        loss = all_positions_dam_loss(logp_model, logp_model.detach(), weights, x_t == mask).mean()
    else:
        # Every (rollout, step) that revealed a token, rows in (rollout, step) order: padded steps cost nothing.
        visited = torch.stack([rollout.state_before_step(s) for s in range(rollout.num_steps)], 1)
        valid = rollout.step_mask
        logp_model = gather_jump_log_probs(
            policy(visited[valid]), rollout.positions[valid], rollout.tokens[valid], mask
        )
        per_rollout_weight = weights.flatten().unsqueeze(1).expand_as(valid)
        loss = dam_loss(logp_model, rollout.logp_policy[valid], per_rollout_weight[valid]).mean()
    return loss, int(rewards.numel())


def d1_step_loss(
    policy, reference, reward_fn, num_prompts: int, k: int, kl_beta: float, generator
) -> tuple[Tensor, int]:
    """diffu-GRPO loss of one step (one policy update per batch, so the clipped ratio is one); ``(loss, reward
    calls)``."""
    mask, length = policy.mask_token_id, policy.length
    with torch.no_grad():
        final = sample_ctmc(policy, torch.full((num_prompts * k, length), mask), mask, generator=generator).final
        completion = torch.ones_like(final, dtype=torch.bool)
        ref = mean_field_token_log_probs(reference, final, completion, mask, p_mask_prompt=0.0)
        rewards = reward_fn(final)
    logp = mean_field_token_log_probs(policy, final, completion, mask, p_mask_prompt=0.0)
    advantages = group_normalized_advantages(rewards.float(), k, scale_rewards=False)
    return diffu_grpo_loss(logp, logp.detach(), advantages, completion, beta=kl_beta, ref_logp=ref), int(
        rewards.numel()
    )
