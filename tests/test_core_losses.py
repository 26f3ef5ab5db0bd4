"""The DAM losses: exact expected loss over all first jumps of a toy state, its fixed point, and gKL by hand."""

from __future__ import annotations

import math

import pytest
import torch

from trl_dam.core import dam_loss, generalized_kl

pytestmark = pytest.mark.usefixtures("single_thread")

LENGTH = 3
VOCAB = 4
MASK = 3
REAL = [0, 1, 2]
BETA = 0.5


@pytest.fixture(scope="module")
def jump_laws(toy):
    """Exact Q_base, Q* = Q_base h(y)/h(x) and a third sampler law Q^ubar over the 9 moves from the all-masked state."""
    base = toy.TableDenoiser(LENGTH, VOCAB, seed=31, scale=1.0)
    sampler = toy.TableDenoiser(LENGTH, VOCAB, seed=32, scale=1.0)
    reward = torch.randn(VOCAB**LENGTH, generator=torch.Generator().manual_seed(33), dtype=torch.float64)
    exp_r = torch.exp(reward / BETA)
    x = [MASK] * LENGTH
    h_x = float(toy.exact_final_distribution(base, x, MASK, VOCAB) @ exp_r)
    p_base = toy.token_probs(base(torch.tensor([x]))[0], MASK)
    p_samp = toy.token_probs(sampler(torch.tensor([x]))[0], MASK)
    jumps = [(i, v) for i in range(LENGTH) for v in REAL]
    h_y = torch.tensor(
        [
            float(
                toy.exact_final_distribution(base, [v if j == i else MASK for j in range(LENGTH)], MASK, VOCAB) @ exp_r
            )
            for i, v in jumps
        ],
        dtype=torch.float64,
    )
    q_base = torch.stack([p_base[i, v] for i, v in jumps]) / LENGTH
    q_bar = torch.stack([p_samp[i, v] for i, v in jumps]) / LENGTH
    return q_base, q_base * h_y / h_x, q_bar


def _expected_loss(theta, q_bar, q_star, loss_type):
    """sum_y Q^ubar(y) dam_loss(a = log Q_theta(y), b = log Q^ubar(y), W = Q*(y) / Q^ubar(y))."""
    a = torch.log_softmax(theta, -1)
    b = q_bar.log()
    return (q_bar * dam_loss(a, b, q_star / q_bar, loss_type)).sum()


@pytest.mark.parametrize("loss_type", ["gkl", "l2"])
def test_expected_loss_gradient_vanishes_at_the_h_transform(jump_laws, loss_type):
    """(d) The exact expected DAM loss is stationary at Q_theta = Q* and not at Q_theta = Q_base."""
    q_base, q_star, q_bar = jump_laws
    assert abs(float(q_star.sum()) - 1) < 1e-12
    assert float((q_star - q_base).abs().max()) > 0.05

    def grad_at(q):
        theta = q.log().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(_expected_loss(theta, q_bar, q_star, loss_type), theta)
        return grad

    assert float(grad_at(q_star).norm()) < 1e-6
    g_base = grad_at(q_base)
    assert float(g_base.norm()) > 1e-2
    # Closed forms of the expected-loss gradient w.r.t. softmax logits (sum_y Q*(y) = 1):
    #   gKL: sum_y [Q - w log Q] -> Q_j - w_j;   l2: sum_y (Q - w)^2 -> 2 Q_j [(Q_j - w_j) - sum_y Q_y (Q_y - w_y)].
    if loss_type == "gkl":
        expected = q_base - q_star
    else:
        diff = q_base - q_star
        expected = 2 * q_base * (diff - (q_base * diff).sum())
    torch.testing.assert_close(g_base, expected, rtol=1e-9, atol=1e-12)

    # Minimising the expected loss from Q_base lands on Q*.
    theta = q_base.log().clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [theta], lr=1.0, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        loss = _expected_loss(theta, q_bar, q_star, loss_type)
        loss.backward()
        return loss

    opt.step(closure)
    assert float((torch.softmax(theta.detach(), -1) - q_star).abs().max()) < 1e-4


def test_expected_gkl_loss_is_the_generalized_kl(jump_laws):
    """E_{Y~Q^ubar}[dam_loss] = D_gKL(Q_theta, Q*) for any theta (the 1/Q^ubar debiasing is exact)."""
    q_base, q_star, q_bar = jump_laws
    theta = torch.randn(q_base.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = generalized_kl(torch.log_softmax(theta, -1), q_star.log())
    torch.testing.assert_close(_expected_loss(theta, q_bar, q_star, "gkl"), expected, rtol=1e-12, atol=1e-14)
    l2 = ((torch.softmax(theta, -1) - q_star) ** 2).sum()
    torch.testing.assert_close(_expected_loss(theta, q_bar, q_star, "l2"), l2, rtol=1e-12, atol=1e-14)


def test_token_log_probs_leave_gkl_alone_and_reweight_l2_by_one_over_pi(jump_laws):
    """Passing log p(v|x, i) instead of log Q = log pi + log p(v|x, i) (as the trainers do; here pi = 1/3, one token
    per jump from 3 masks): the gKL loss is unchanged, the l2 loss is multiplied by 1/pi = C(3, 1) = 3."""
    _, q_star, q_bar = jump_laws
    theta = torch.randn(q_bar.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a, b, weights = torch.log_softmax(theta, -1), q_bar.log(), q_star / q_bar
    log_pi = -math.log(LENGTH)
    for loss_type, factor in (("gkl", 1.0), ("l2", LENGTH)):
        with_pi = (q_bar * dam_loss(a, b, weights, loss_type)).sum()
        tokens_only = (q_bar * dam_loss(a - log_pi, b - log_pi, weights, loss_type)).sum()
        torch.testing.assert_close(tokens_only, factor * with_pi, rtol=1e-12, atol=0)
    assert float(with_pi) > 1e-3  # not a trivial 0 = 3 * 0


def test_dam_loss_values_and_gradient_by_hand():
    a = torch.tensor([-1.0, -2.0, -0.5, -3.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([-1.0, -1.5, -0.7, -2.0], dtype=torch.float64)
    w = torch.tensor([1.0, 2.5, 0.3, 0.0], dtype=torch.float64)
    gkl = dam_loss(a, b, w)
    by_hand = [
        math.exp(0.0) - 1.0 + 1.0 * (0.0 - 1.0 + 1.0),
        math.exp(-0.5) - 2.5 + 2.5 * (math.log(2.5) - 1.5 + 2.0),
        math.exp(0.2) - 0.3 + 0.3 * (math.log(0.3) - 0.7 + 0.5),
        math.exp(-1.0),  # W = 0: 0 log 0 = 0
    ]
    torch.testing.assert_close(gkl.detach(), torch.tensor(by_hand, dtype=torch.float64))
    (grad,) = torch.autograd.grad(gkl.sum(), a)
    # d/da = e^{a-b} - W, finite for W = 0; at a = b it is 1 - W.
    torch.testing.assert_close(grad, torch.exp(a.detach() - b) - w)
    assert grad[0] == 0.0
    l2 = dam_loss(a, b, w, "l2")
    torch.testing.assert_close(l2.detach(), b.exp() * (torch.exp(a.detach() - b) - w) ** 2)
    # Non-negative, zero exactly at Q_theta = w = W Q^ubar.
    assert (gkl >= 0).all() and (l2 >= 0).all()
    assert float(dam_loss(b + torch.log(torch.tensor(2.5)), b, torch.full_like(b, 2.5)).abs().max()) < 1e-12
    # Sampler log-prob and weights are constants.
    b2 = b.clone().requires_grad_(True)
    w2 = w.clone().requires_grad_(True)
    dam_loss(a, b2, w2).sum().backward()
    assert b2.grad is None and w2.grad is None
    with pytest.raises(ValueError):
        dam_loss(a, b, w, "kl")


def test_generalized_kl_by_hand():
    u = torch.tensor([0.2, 1.5, 0.7, 0.4], dtype=torch.float64)
    w = torch.tensor([0.5, 1.0, 0.7, 0.0], dtype=torch.float64)
    by_hand = (0.2 - 0.5 + 0.5 * math.log(0.5 / 0.2)) + (1.5 - 1.0 + 1.0 * math.log(1.0 / 1.5)) + 0.0 + 0.4
    torch.testing.assert_close(generalized_kl(u.log(), w.log()), torch.tensor(by_hand, dtype=torch.float64))
    valid = torch.tensor([True, True, False, False])
    partial = (0.2 - 0.5 + 0.5 * math.log(0.5 / 0.2)) + (1.5 - 1.0 + 1.0 * math.log(1.0 / 1.5))
    torch.testing.assert_close(generalized_kl(u.log(), w.log(), valid), torch.tensor(partial, dtype=torch.float64))

    gen = torch.Generator().manual_seed(0)
    log_u = torch.randn(200, 6, generator=gen, dtype=torch.float64)
    log_w = torch.randn(200, 6, generator=gen, dtype=torch.float64)
    assert (generalized_kl(log_u, log_w) > 0).all()
    assert float(generalized_kl(log_w, log_w).abs().max()) == 0.0
    # Unnormalised rates: equal up to a scale is not equal.
    assert (generalized_kl(log_w + 0.1, log_w) > 0).all()

    # Gradient w.r.t. u (through log u) is u - w: zero at u = w.
    log_u = log_w.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(generalized_kl(log_u, log_w).sum(), log_u)
    assert float(grad.abs().max()) < 1e-12
    log_u = torch.randn(200, 6, generator=gen, dtype=torch.float64).requires_grad_(True)
    (grad,) = torch.autograd.grad(generalized_kl(log_u, log_w).sum(), log_u)
    torch.testing.assert_close(grad, log_u.detach().exp() - log_w.exp())


def test_k_tokens_per_jump_land_on_the_product_of_the_targets_marginals(toy):
    """``tokens_per_step = 2`` on 2 tokens, r = 1{a = b}, beta = 0.5: one jump reveals both tokens, each drawn
    independently from the model, so the model's jumps are product distributions p_1(a) p_2(b). The path ratios are
    exact, but the minimiser of the exact expected DAM loss over products is the product of Q*'s marginals, not Q*:
    training is biased by the mutual information of p* (measured KL(p* || learned) = 0.40 here)."""
    base = toy.TableDenoiser(2, VOCAB, seed=41, scale=0.5)
    x = torch.tensor([[MASK, MASK]])
    p_base = toy.token_probs(base(x)[0], MASK)[:, :MASK]  # [position, real token]
    reward = torch.eye(MASK, dtype=torch.float64)  # r(a, b) = 1{a = b}
    q_base = p_base[0][:, None] * p_base[1][None, :]  # the base jump law = its final law (both tokens at once)
    q_star = q_base * torch.exp(reward / BETA)
    q_star = (q_star / q_star.sum()).flatten()  # = p*
    sampler = torch.softmax(torch.randn(2, MASK, generator=torch.Generator().manual_seed(42), dtype=torch.float64), -1)
    q_bar = (sampler[0][:, None] * sampler[1][None, :]).flatten()

    theta = torch.zeros(2, MASK, dtype=torch.float64, requires_grad=True)

    def expected_loss():
        log_p = torch.log_softmax(theta, -1)
        a = (log_p[0][:, None] + log_p[1][None, :]).flatten()  # a = log p_1(a) + log p_2(b), as gather_jump_log_probs
        return (q_bar * dam_loss(a, q_bar.log(), q_star / q_bar)).sum()

    opt = torch.optim.LBFGS([theta], lr=1, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        loss = expected_loss()
        loss.backward()
        return loss

    opt.step(closure)
    learned = torch.softmax(theta.detach(), -1)
    marginals = q_star.view(MASK, MASK)
    torch.testing.assert_close(learned[0], marginals.sum(1), atol=1e-6, rtol=0)
    torch.testing.assert_close(learned[1], marginals.sum(0), atol=1e-6, rtol=0)
    product = (learned[0][:, None] * learned[1][None, :]).flatten()
    kl = float((q_star * (q_star.log() - product.log())).sum())
    assert 0.3 < kl < 0.5, kl  # measured 0.40: the mutual information of p*
