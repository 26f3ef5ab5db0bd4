"""The all-positions DAM target: its per-sample gradient, its exact expected gradient against enumeration (the
rollout-marginal mismatch), the Doob chain as its fixed point, and the bias of the marginal target for a base that is
not order-consistent."""

from __future__ import annotations

import itertools

import pytest
import torch

from trl_dam.core.all_positions import all_positions_dam_loss, all_positions_log_probs

pytestmark = pytest.mark.usefixtures("single_thread")

LENGTH = 3
VOCAB = 3  # ids 0, 1 real, 2 the mask
MASK = 2
REAL = [0, 1]
BETA = 0.7


def test_per_sample_logit_gradient_is_one_minus_weight_at_each_final_token():
    """At theta = ubar the gradient on the logits of masked position i is (1/|M|)(1/K) sum_k (1 - W_k) e_{Z_k[i]}."""
    gen = torch.Generator().manual_seed(0)
    states, k, length, vocab = 2, 5, 4, 4
    logits = torch.randn(states, length, vocab, generator=gen, dtype=torch.float64, requires_grad=True)
    finals = torch.randint(0, vocab - 1, (states, k, length), generator=gen)
    masked = torch.tensor([[True, False, True, True], [False, True, False, False]])
    weights = k * torch.softmax(torch.randn(states, k, generator=gen, dtype=torch.float64), -1)
    a = all_positions_log_probs(logits, finals, vocab - 1)
    all_positions_dam_loss(a, a.detach(), weights, masked).sum().backward()
    expected = torch.zeros(states, length, vocab, dtype=torch.float64)
    for s, kk, i in itertools.product(range(states), range(k), range(length)):
        if masked[s, i]:
            expected[s, i, finals[s, kk, i]] += (1 - weights[s, kk]) / k / masked[s].sum()
    torch.testing.assert_close(logits.grad, expected, rtol=1e-5, atol=1e-7)
    assert float(expected.abs().max()) > 0.05  # the check is not vacuous


def test_all_weights_one_give_zero_gradient_per_sample():
    """Zero variance at the optimum: W_k = 1 for every rollout gives an exactly zero gradient, sample by sample."""
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 3, 4, generator=gen, requires_grad=True)
    finals = torch.randint(0, 3, (1, 6, 3), generator=gen)
    a = all_positions_log_probs(logits, finals, 3)
    all_positions_dam_loss(a, a.detach(), torch.ones(1, 6), torch.ones(1, 3, dtype=torch.bool)).sum().backward()
    assert float(logits.grad.abs().max()) == 0.0


def test_shape_errors_name_the_culprit():
    with pytest.raises(ValueError, match="finals"):
        all_positions_log_probs(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="weights"):
        all_positions_dam_loss(torch.zeros(2, 4, 3), torch.zeros(2, 4, 3), torch.ones(2, 3), torch.ones(2, 3).bool())


# ---------------------------------------------------------------- exact laws on the toy chain


def _completions(x):
    masked = [i for i, t in enumerate(x) if t == MASK]
    out = []
    for toks in itertools.product(REAL, repeat=len(masked)):
        z = list(x)
        for i, v in zip(masked, toks):
            z[i] = v
        out.append(z)
    return out


def _code(z):
    return sum(t * VOCAB**i for i, t in enumerate(z))


_LAWS: dict = {}


def _law(toy, fn, x):
    """Exact law of X1 from x (a vector over codes of {0..VOCAB-1}^L), cached per denoiser and state."""
    key = (fn, tuple(x))  # the key keeps fn alive, so no other object can take its identity
    if key not in _LAWS:
        _LAWS[key] = toy.exact_final_distribution(fn, x, MASK, VOCAB)
    return _LAWS[key]


class LogTable:
    """A denoiser whose logits are a given table of log token probabilities per state code."""

    def __init__(self, table):
        self.table = table

    def __call__(self, x):
        return self.table[(x * VOCAB ** torch.arange(x.shape[-1])).sum(-1)]


def _h(toy, fn, s, exp_r):
    return float(_law(toy, fn, s) @ exp_r)


def _tilted(law, exp_r):
    tilted = law * exp_r
    return tilted / tilted.sum()


def _marginals(law, x):
    """[L, VOCAB]: P(Z_i = v) under a law over codes, for the masked positions of x."""
    out = torch.zeros(LENGTH, VOCAB, dtype=torch.float64)
    for z in _completions(x):
        for i in range(LENGTH):
            out[i, z[i]] += law[_code(z)]
    return out


_ALL = [[(c // VOCAB**i) % VOCAB for i in range(LENGTH)] for c in range(VOCAB**LENGTH)]  # code order
_PARTIAL = [s for s in _ALL if MASK in s]


def _indicator(s):
    """1 on the codes of completions consistent with the revealed tokens of s."""
    return torch.tensor([float(all(t == MASK or t == z_t for t, z_t in zip(s, z))) for z in _ALL], dtype=torch.float64)


def _order_consistent_chain(joint):
    """The masked LM whose denoiser is the conditional marginal of ``joint``: p(v|x,i) = joint(Z_i = v | x)."""
    table = torch.zeros(VOCAB**LENGTH, LENGTH, VOCAB, dtype=torch.float64)
    for s in _PARTIAL:
        conditional = joint * _indicator(s)
        table[_code(s)] = (_marginals(conditional / conditional.sum(), s)).log()
    return LogTable(table)


@pytest.fixture(scope="module")
def problem(toy):
    """A state-dependent toy base (not order-consistent), an order-consistent base, and the reward."""
    reward = torch.randn(VOCAB**LENGTH, generator=torch.Generator().manual_seed(42), dtype=torch.float64)
    real = torch.tensor([float(MASK not in z) for z in _ALL], dtype=torch.float64)
    joint = torch.softmax(torch.randn(VOCAB**LENGTH, generator=torch.Generator().manual_seed(43)), 0).double() * real
    joint = joint / joint.sum()
    return (
        toy.TableDenoiser(LENGTH, VOCAB, seed=41, scale=1.2),
        _order_consistent_chain(joint),
        joint,
        reward.div(BETA).exp(),
    )


def _expected_logit_gradient(toy, model, base, x, exp_r):
    """d/dlogits(x) of E_{Z ~ model_x}[all-positions loss] with exact weights W = p*_x / model_x (K -> infinity)."""
    law = _law(toy, model, x)
    target = _tilted(_law(toy, base, x), exp_r)
    zs = _completions(x)
    u = torch.tensor([float(law[_code(z)]) for z in zs], dtype=torch.float64)
    w = torch.tensor([float(target[_code(z)]) for z in zs], dtype=torch.float64) / u
    logits = model(torch.tensor([x])).clone().requires_grad_(True)
    # One "state" per completion z (K = 1), all sharing the logits of x; the expectation is the u-weighted sum.
    a = all_positions_log_probs(logits.expand(len(zs), -1, -1), torch.tensor(zs).unsqueeze(1), MASK)
    masked = torch.tensor([t == MASK for t in x]).expand(len(zs), -1)
    (u * all_positions_dam_loss(a, a.detach(), w.unsqueeze(1), masked)).sum().backward()
    return logits.grad[0], law, target


@pytest.mark.parametrize("x", [[MASK, MASK, MASK], [1, MASK, MASK]])
def test_expected_gradient_is_the_rollout_marginal_mismatch(toy, problem, x):
    """Exact expectation over Z ~ ubar: the gradient on the logits of position i is (P^ubar_x(Z_i) - p*_x(Z_i))/|M|
    (the model is the state-dependent toy base itself, sampled and weighted exactly)."""
    base, _, _, exp_r = problem
    grad, law, target = _expected_logit_gradient(toy, base, base, x, exp_r)
    mismatch = (_marginals(law, x) - _marginals(target, x)) / sum(t == MASK for t in x)
    mismatch[[t != MASK for t in x]] = 0.0
    torch.testing.assert_close(grad, mismatch, rtol=1e-5, atol=1e-7)
    assert float(mismatch.abs().max()) > 1e-2


def test_order_consistent_base_fixed_point_is_the_doob_chain_and_the_p_star_marginals(toy, problem):
    """Order-consistent base: the Doob jump Q*(v|x,i) = p(v|x,i) h(x[i<-v]) / h(x) is a per-position law equal to
    the p*-marginal of x_i given x, and the chain of those marginals is a zero of the expected gradient from every
    state (while the base is not)."""
    _, consistent, joint, exp_r = problem
    torch.testing.assert_close(_law(toy, consistent, [MASK] * LENGTH), joint, rtol=0, atol=1e-12)
    p_star = _tilted(joint, exp_r)
    optimum = _order_consistent_chain(p_star)
    for x in _PARTIAL:
        p = toy.token_probs(consistent(torch.tensor([x]))[0], MASK)
        conditional = p_star * _indicator(x)
        p_star_x = _marginals(conditional / conditional.sum(), x)
        for i in (i for i, t in enumerate(x) if t == MASK):
            for v in REAL:
                y = list(x)
                y[i] = v
                doob = float(p[i, v]) * _h(toy, consistent, y, exp_r) / _h(toy, consistent, x, exp_r)
                assert abs(doob - float(p_star_x[i, v])) < 1e-12
        grad, _, _ = _expected_logit_gradient(toy, optimum, consistent, x, exp_r)
        assert float(grad.abs().max()) < 1e-6
    grad, _, _ = _expected_logit_gradient(toy, consistent, consistent, [MASK] * LENGTH, exp_r)
    assert float(grad.abs().max()) > 1e-2


def test_doob_jump_of_a_base_that_is_not_order_consistent_leaves_the_masked_lm_family(toy, problem):
    """For the state-dependent toy base, sum_v p(v|x,i) h(x[i<-v]) / h(x) depends on i: the Doob chain moves the
    position law off uniform, so no masked LM (uniform position, per-position softmax) holds it. Per-position
    normalisation (the first-jump form's fixed point) and the p*_x marginal (the all-positions target) then differ:
    both targets carry a bias there."""
    base, _, _, exp_r = problem
    x = [MASK] * LENGTH
    p = toy.token_probs(base(torch.tensor([x]))[0], MASK)
    h_x = _h(toy, base, x, exp_r)
    doob = torch.zeros(LENGTH, VOCAB, dtype=torch.float64)
    for i, v in itertools.product(range(LENGTH), REAL):
        y = list(x)
        y[i] = v
        doob[i, v] = p[i, v] * _h(toy, base, y, exp_r) / h_x
    position_mass = doob.sum(-1)
    assert abs(float(position_mass.mean()) - 1.0) < 1e-12  # uniform pi times the jump law: the masses average to 1
    assert float(position_mass.max() - position_mass.min()) > 1e-2
    first_jump_fixed_point = doob / position_mass[:, None]
    p_star_marginal = _marginals(_tilted(_law(toy, base, x), exp_r), x)
    assert float((first_jump_fixed_point - p_star_marginal).abs().max()) > 1e-3
