"""`DAMConfig.dam_target = "all_positions"` end to end, and the shared first rollout step, on the tiny model."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from trainer_helpers import PROMPTS, build_trainer, char_tokenizer, cpu_config_kwargs

from trl_dam.core import Trajectory, jump_log_probs, sample_ctmc
from trl_dam.core.shared_rows import GroupedRowsDenoiser
from trl_dam.trainers import DAMConfig, DAMTrainer


@pytest.fixture(scope="module")
def tokenizer():
    return char_tokenizer()


def make_trainer(tmp_path, tokenizer, **overrides) -> DAMTrainer:
    args = DAMConfig(**cpu_config_kwargs(tmp_path, **{"beta": 0.05, **overrides}))
    return build_trainer(DAMTrainer, args, tokenizer)


def test_dam_target_is_validated(tmp_path):
    with pytest.raises(ValueError, match="`dam_target`"):
        DAMConfig(**cpu_config_kwargs(tmp_path, dam_target="every_token"))
    assert DAMConfig(**cpu_config_kwargs(tmp_path)).dam_target == "first_jump"  # the paper's form stays the default


def test_all_positions_gradient_is_weighted_score_of_every_masked_position(tmp_path, tokenizer):
    """At theta = u-bar the trainer's gradient is mean_states (1/|M|) sum_{i in M} mean_k (1 - W_k) grad a_{k,i},
    a_{k,i} = log p_theta(Z_k[i] | X_t, i), computed here independently: one forward per (rollout, position)."""
    trainer = make_trainer(
        tmp_path, tokenizer, per_device_train_batch_size=12, num_generations=4, dam_target="all_positions"
    )
    trainer.model.train()
    inputs = trainer._prepare_inputs([{"prompt": p} for p in PROMPTS[:3]])
    states, num = inputs["weights"].shape
    masked = inputs["masked"]
    assert (states, num) == (3, 4) and int(masked.sum()) >= 3
    assert not masked[:, : -trainer.args.max_completion_length].any()
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(trainer.compute_loss(trainer.model, inputs), params)

    logits_fn = trainer._denoiser(trainer.model)
    surrogate = 0.0
    for s in range(states):
        positions = masked[s].nonzero(as_tuple=True)[0]
        rows = inputs["x_t"][s : s + 1].expand(num * len(positions), -1)
        pos = positions.repeat(num).view(-1, 1)
        tok = inputs["finals"][s][:, positions].reshape(-1, 1)
        a = jump_log_probs(logits_fn, rows, pos, tok, trainer.mask_token_id).view(num, len(positions))
        b = inputs["logp_sampler_positions"][s][:, positions]
        torch.testing.assert_close(a.detach(), b, atol=1e-5, rtol=0)  # theta = u-bar: b is the sampler's
        surrogate = surrogate + ((1 - inputs["weights"][s]).unsqueeze(1) * a).mean(0).sum() / len(positions)
    expected = torch.autograd.grad(surrogate / states, params)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, atol=1e-6, rtol=1e-4)
    assert max(float(g.abs().max()) for g in grads) > 1e-4  # the check is not vacuous


def test_all_jumps_gradient_is_weighted_score_of_every_rollout_jump(tmp_path, tokenizer):
    """At theta = u-bar the gradient is mean over every jump (rollout k, step s) of (1 - W_k) grad log p_theta(v_s |
    x_s, i_s), with x_s rebuilt independently here by the sampler's own Trajectory.state_before_step."""
    trainer = make_trainer(
        tmp_path, tokenizer, per_device_train_batch_size=12, num_generations=4, dam_target="all_jumps"
    )
    trainer.model.train()
    inputs = trainer._prepare_inputs([{"prompt": p} for p in PROMPTS[:3]])
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(trainer.compute_loss(trainer.model, inputs), params)

    num = inputs["weights"].shape[1]
    positions, tokens, valid = inputs["jump_positions"], inputs["jump_tokens"], inputs["jump_mask"]
    initial = inputs["x_t"].repeat_interleave(num, 0)
    trajectory = Trajectory(initial, initial, positions, tokens, valid, inputs["jump_logp_sampler"])
    logits_fn = trainer._denoiser(trainer.model)
    terms = []
    for step in range(trajectory.num_steps):
        rows = valid[:, step]
        if not rows.any():
            continue
        state = trajectory.state_before_step(step)[rows]
        a = jump_log_probs(logits_fn, state, positions[rows, step], tokens[rows, step], trainer.mask_token_id)
        torch.testing.assert_close(a.detach(), inputs["jump_logp_sampler"][rows, step], atol=1e-5, rtol=0)
        terms.append((1 - inputs["weights"].reshape(-1)[rows]) * a)
    assert int(valid.sum()) > initial.shape[0]  # more jumps than rollouts: later jumps are trained too
    expected = torch.autograd.grad(torch.cat(terms).sum() / valid.sum(), params)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, atol=1e-6, rtol=1e-4)
    assert max(float(g.abs().max()) for g in grads) > 1e-4


def test_grouped_rows_give_the_same_trajectory_with_fewer_rows():
    """Sharing the first step is exact: same seed, same trajectory and log-probs, K - 1 rows fewer per state."""
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(4, 7, 5, generator=gen)

    def logits_fn(x):
        calls.append(x.shape[0])
        return table[x[:, 0] % 4] + x[:, :, None].float()  # depends on the state

    x = torch.tensor([[1, 4, 4, 4, 2, 4, 4], [3, 4, 4, 0, 4, 4, 4]]).repeat_interleave(3, 0)
    calls = []
    plain = sample_ctmc(logits_fn, x, 4, generator=torch.Generator().manual_seed(1))
    plain_rows = sum(calls)
    calls = []
    shared_fn = GroupedRowsDenoiser(logits_fn, 3)
    shared = sample_ctmc(shared_fn, x, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(plain.final, shared.final) and torch.equal(plain.logp_policy, shared.logp_policy)
    assert shared_fn.rows_saved == 4 and sum(calls) == plain_rows - 4
    with pytest.raises(ValueError, match="group"):
        GroupedRowsDenoiser(logits_fn, 0)
