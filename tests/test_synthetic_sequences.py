"""The long-sequence exact-KL task: the dynamic programme against an independent enumeration, the exact KL at
initialisation, the reward, and one step of every update through the generic core pieces."""

from __future__ import annotations

import math

import pytest
import torch

from trl_dam.synthetic.chain import kl_divergence
from trl_dam.synthetic.sequence_runner import SequenceConfig, run_sequence, setup_task
from trl_dam.synthetic.sequence_updates import ForwardCounter, d1_step_loss, dam_step_loss
from trl_dam.synthetic.sequences import (
    SequenceDenoiser,
    all_completions,
    exact_final_log_law,
    successor_reward,
    target_log_law,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def _independent_law(toy, net, length, vocab):
    """The conftest recursion over (V+1)-ary codes, read in the order of all_completions."""
    law = toy.exact_final_distribution(net, [vocab] * length, vocab, vocab + 1)
    codes = (all_completions(length, vocab) * (vocab + 1) ** torch.arange(length)).sum(1)
    return law[codes]


@pytest.mark.parametrize(("length", "vocab"), [(3, 3), (4, 2)])
def test_dynamic_programme_equals_enumeration(toy, length, vocab):
    torch.manual_seed(0)
    net = SequenceDenoiser(length, vocab, hidden=32)
    with torch.no_grad():
        net.mlp[-1].weight.mul_(20)  # sharp, state-dependent conditionals: far from uniform and order-inconsistent
        exact = _independent_law(toy, net, length, vocab)
        log_law = exact_final_log_law(net, length, vocab)
    assert abs(float(exact.sum()) - 1) < 1e-9 and float(exact.max()) > 3 / vocab**length
    torch.testing.assert_close(log_law.exp(), exact, rtol=1e-5, atol=1e-9)


def test_exact_kl_at_initialisation_equals_enumeration(toy):
    config = SequenceConfig(length=4, vocab=2, iterations=0, pretrain_steps=20, hidden=32)
    result = run_sequence(config)
    base, _, _ = setup_task(4, 2, 32, 20, 0, config.beta, config.reward_scale)
    with torch.no_grad():
        law = _independent_law(toy, base, 4, 2)
    rewards = successor_reward(all_completions(4, 2), 2, config.reward_scale)
    tilted = law * torch.exp(rewards / config.beta)
    target = tilted / tilted.sum()
    expected = float((target * (target.log() - law.log())).sum())
    assert result.iterations == [0] and expected > 1e-2
    assert math.isclose(result.kl[0], expected, rel_tol=1e-5) and math.isclose(result.kl_base, expected, rel_tol=1e-5)


def test_successor_reward_counts_adjacent_successors():
    tokens = torch.tensor([[0, 1, 2, 0], [2, 2, 2, 2], [1, 2, 0, 0]])
    torch.testing.assert_close(successor_reward(tokens, 3, scale=3.0), torch.tensor([3.0, 0.0, 2.0]).double())
    assert float(successor_reward(torch.tensor([0, 0, 1]), 2, scale=2.0)) == 1.0


def test_target_law_is_the_tilted_base():
    log_base = torch.log(torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64))
    target = target_log_law(log_base, torch.tensor([0.0, math.log(2.0), 0.0], dtype=torch.float64), beta=1.0)
    torch.testing.assert_close(target.exp(), torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64))
    assert kl_divergence(target, target) == 0.0


@pytest.mark.parametrize("target", ["first_jump", "all_jumps", "all_positions"])
def test_dam_step_counts_reward_calls_and_gradient_rows(target):
    """One reward call per rollout; the gradient forward takes one row per state, or every state visited by a
    rollout for all_jumps (the same rows as the rollouts' own forwards)."""
    torch.manual_seed(0)
    net = SequenceDenoiser(4, 3, hidden=32)
    policy, reference = ForwardCounter(net), ForwardCounter(SequenceDenoiser(4, 3, hidden=32).requires_grad_(False))
    reward = lambda x: successor_reward(x, 3)  # noqa: E731
    loss, calls = dam_step_loss(policy, reference, reward, 5, 4, 1.0, torch.Generator().manual_seed(0), target)
    assert calls == 20 and loss.requires_grad and loss.item() > 0
    gradient_rows = policy.rows - reference.rows - 5 * 4  # policy: X1 (5 rows x 4 steps) + rollouts (= reference)
    assert gradient_rows == (5 if target != "all_jumps" else reference.rows)


def test_d1_step_counts_and_learns_direction():
    torch.manual_seed(0)
    net = SequenceDenoiser(4, 3, hidden=32)
    policy, reference = ForwardCounter(net), ForwardCounter(SequenceDenoiser(4, 3, hidden=32).requires_grad_(False))
    loss, calls = d1_step_loss(policy, reference, lambda x: successor_reward(x, 3), 3, 4, 0.0, torch.Generator())
    assert calls == 12 and loss.requires_grad and policy.rows == 12 * 4 + 12  # sampling + one mean-field forward


def test_cosine_schedule_anneals_the_step_size_and_the_run_still_learns():
    """The schedule is the closed-form cosine from ``learning_rate`` to ``lr_final`` over the run's steps: the first
    step runs at ``learning_rate``, step t at lr_final + (lr - lr_final)(1 + cos(pi (t - 1) / T)) / 2; the annealed run
    still lowers the exact KL; the constant default keeps every step at ``learning_rate``."""
    common = dict(
        length=4, vocab=2, method="dam_all_jumps", iterations=40, eval_every=20, pretrain_steps=20, hidden=32
    )
    cosine = run_sequence(SequenceConfig(**common, learning_rate=3e-3, lr_schedule="cosine", lr_final=1e-4))
    assert cosine.iterations == [0, 20, 40]
    expected = [1e-4 + (3e-3 - 1e-4) * (1 + math.cos(math.pi * (t - 1) / 40)) / 2 for t in (1, 20, 40)]
    assert cosine.learning_rates == pytest.approx(expected, rel=1e-9)
    assert cosine.learning_rates[-1] == pytest.approx(1.0447e-04, rel=1e-4)  # the last step: just above lr_final
    assert all(math.isfinite(kl) for kl in cosine.kl) and cosine.kl[-1] < 0.1 * cosine.kl[0]
    constant = run_sequence(SequenceConfig(**common, learning_rate=3e-3))
    assert constant.learning_rates == [3e-3] * 3
    with pytest.raises(ValueError, match="lr_schedule"):
        run_sequence(SequenceConfig(**common, lr_schedule="linear"))
    with pytest.raises(ValueError, match="lr_final"):
        run_sequence(SequenceConfig(**common, lr_schedule="cosine", lr_final=1.0))
