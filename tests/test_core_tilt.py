"""The beta ceiling (`trl_dam.core.tilt`): the KL of the tilt p* ~ p e^{r/beta}, its bound from the reward spread, and
the importance-weighted target reward, against brute-force enumeration of small distributions."""

import math

import torch

from trl_dam.core import target_reward_estimate, tilt_kl, tilt_kl_bound


def _tilt(p: torch.Tensor, rewards: torch.Tensor, beta: float) -> torch.Tensor:
    unnormalised = [float(pi) * math.exp(float(ri) / beta) for pi, ri in zip(p, rewards)]
    return torch.tensor([u / sum(unnormalised) for u in unnormalised], dtype=torch.float64)


def test_tilt_kl_matches_enumeration_and_the_spread_bounds():
    generator = torch.Generator().manual_seed(0)
    for trial in range(50):
        n = 2 + trial % 6
        p = torch.softmax(2 * torch.randn(n, generator=generator, dtype=torch.float64), 0)
        rewards = torch.rand(n, generator=generator, dtype=torch.float64) * (1 + trial % 3)
        beta = [0.05, 0.3, 1.0, 5.0][trial % 4]
        star = _tilt(p, rewards, beta)
        kl = float((star * (star / p).log()).sum())
        assert math.isclose(float(tilt_kl(rewards, beta, p.log())), kl, rel_tol=1e-9, abs_tol=1e-12)
        spread = float(rewards.max() - rewards.min())
        tv = 0.5 * float((star - p).abs().sum())
        gain = float((star - p) @ rewards)
        assert kl <= tilt_kl_bound(spread, beta) + 1e-12  # Hoeffding's lemma
        assert tv <= spread / (4 * beta) + 1e-12  # Pinsker on top of it
        assert gain / spread <= spread / (4 * beta) + 1e-12  # Popoviciu on the tilted variances


def test_tilt_kl_of_samples_is_the_uniform_case_and_second_order_small():
    rewards = torch.tensor([0.0, 0.2, 0.2, 0.5, 1.0], dtype=torch.float64)
    uniform = torch.full((5,), 0.2, dtype=torch.float64)
    torch.testing.assert_close(tilt_kl(rewards, 0.7), tilt_kl(rewards, 0.7, uniform.log()))
    # Large beta: KL ~ Var(r) / (2 beta^2) (population variance of the samples).
    beta = 50.0
    variance = float(rewards.var(unbiased=False))
    assert math.isclose(float(tilt_kl(rewards, beta)), variance / (2 * beta**2), rel_tol=0.02)


def test_target_reward_is_the_reward_under_p_star():
    """With all K outcomes of a one-token problem as rollouts drawn from a uniform proposal q, DAM's weights
    W_k = K softmax(log rho_k + r_k / beta), rho_k = p_base(v_k) / q(v_k), make (1/K) sum_k W_k r_k = E_{p*}[r]."""
    p = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    rewards = torch.tensor([0.0, 0.1, 0.4, 1.0], dtype=torch.float64)
    beta = 0.2
    log_rho = p.log() - math.log(0.25)
    weights = 4 * torch.softmax(log_rho + rewards / beta, 0)
    expected = float(_tilt(p, rewards, beta) @ rewards)
    assert math.isclose(float(target_reward_estimate(weights, rewards)), expected, rel_tol=1e-12)
    assert expected > 2 * float(p @ rewards)  # the tilt moves the reward: the check can tell them apart
