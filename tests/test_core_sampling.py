"""Value tests of the masked-CTMC sampler, the path log-ratio and the decoders against brute-force enumeration."""

from __future__ import annotations

import math

import pytest
import torch

from trl_dam.core import (
    jump_log_probs,
    low_confidence_decode,
    path_log_ratio,
    random_unmasking_order,
    sample_ctmc,
    sample_low_confidence,
    selected_token_log_probs,
    token_log_probs,
)
from trl_dam.core.sampling import _inverse_cdf

pytestmark = pytest.mark.usefixtures("single_thread")

LENGTH = 4
NUM_REAL = 3
VOCAB = NUM_REAL + 1


def _tv(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


# (tokens_per_step, temperature, mask_id, start state or None for all-masked)
SAMPLER_CASES = [
    (1, 1.0, 3, None),
    (2, 1.0, 3, None),
    (1, 1.0, 1, [2, 1, 1, 1]),
    (2, 1.0, 1, [1, 1, 3, 1]),
    (1, 0.6, 3, None),
    (2, 1.7, 0, [0, 2, 0, 0]),
]


@pytest.mark.parametrize("tokens_per_step,temperature,mask_id,start", SAMPLER_CASES)
def test_sample_ctmc_matches_exact_marginal(toy, tokens_per_step, temperature, mask_id, start):
    """(a) The law of X1 from `sample_ctmc` is the exact marginal of the random-order jump chain."""
    model = toy.TableDenoiser(LENGTH, VOCAB, seed=11)
    start = [mask_id] * LENGTH if start is None else start
    exact = toy.exact_final_distribution(model, start, mask_id, VOCAB, tokens_per_step, temperature)
    assert abs(float(exact.sum()) - 1) < 1e-12

    num = 60_000
    x = torch.tensor(start).repeat(num, 1)
    gen = torch.Generator().manual_seed(1234)
    traj = sample_ctmc(model, x, mask_id, tokens_per_step=tokens_per_step, temperature=temperature, generator=gen)

    assert not (traj.final == mask_id).any()
    kept = x != mask_id
    assert torch.equal(traj.final[kept], x[kept])
    num_masked = int((x[0] == mask_id).sum())
    assert traj.num_steps == math.ceil(num_masked / tokens_per_step)

    bound = toy.tv_bound(exact, num)
    tv = _tv(toy.empirical_distribution(traj.final, VOCAB), exact)
    assert tv < bound, (tv, bound)

    # Power: a sampler with the wrong (left-to-right) order or the wrong temperature would fail the same bound.
    wrong_order = toy.exact_final_distribution(model, start, mask_id, VOCAB, tokens_per_step, temperature, "left")
    assert _tv(wrong_order, exact) > 3 * bound
    if temperature != 1.0:
        untempered = toy.exact_final_distribution(model, start, mask_id, VOCAB, tokens_per_step, 1.0)
        assert _tv(untempered, exact) > 3 * bound
    if tokens_per_step > 1:
        one_by_one = toy.exact_final_distribution(model, start, mask_id, VOCAB, 1, temperature)
        assert _tv(one_by_one, exact) > 3 * bound


def test_random_unmasking_order_is_uniform():
    """Every permutation of the masked positions is equally likely; unmasked positions never appear."""
    num = 48_000
    is_masked = torch.tensor([True, False, True, True, True]).repeat(num, 1)
    order = random_unmasking_order(is_masked, torch.Generator().manual_seed(0))
    assert (order[:, 4] == -1).all()
    assert not (order[:, :4] == 1).any()
    assert torch.equal(order[:, :4].sort(1).values, torch.tensor([0, 2, 3, 4]).repeat(num, 1))
    _, counts = torch.unique(order[:, :4], dim=0, return_counts=True)
    assert len(counts) == 24
    freq = counts.double() / num
    assert (freq - 1 / 24).abs().max() < 5 * math.sqrt((1 / 24) * (23 / 24) / num)


def _hand_step_log_probs(model, traj, temperature, mask_id):
    """Per-step sum of log p(v | x_s, i) over the revealed slots, recomputed in float64 from the table."""
    batch, steps, _ = traj.positions.shape
    out = torch.zeros(batch, steps, dtype=torch.float64)
    for s in range(steps):
        state = traj.state_before_step(s)
        for b in range(batch):
            z = model(state[b : b + 1])[0].double() / temperature
            z[:, mask_id] = -math.inf
            logp = torch.log_softmax(z, -1)
            for pos, tok in zip(traj.positions[b, s].tolist(), traj.tokens[b, s].tolist()):
                if pos >= 0:
                    assert state[b, pos] == mask_id and tok != mask_id
                    out[b, s] += logp[pos, tok]
    return out


@pytest.mark.parametrize("tokens_per_step,temperature", [(1, 1.0), (2, 1.0), (1, 0.7), (3, 1.3)])
def test_path_log_ratio_matches_hand_computation(toy, tokens_per_step, temperature):
    """(b) The recorded per-step log-probs and `path_log_ratio` equal log p_base(path) - log p_u(path) by hand."""
    mask_id = 3
    policy = toy.TableDenoiser(LENGTH, VOCAB, seed=1)
    base = toy.TableDenoiser(LENGTH, VOCAB, seed=2)
    x = torch.tensor([[3, 3, 3, 3], [0, 3, 3, 3], [3, 1, 2, 3], [2, 1, 0, 3], [1, 1, 1, 1], [3, 3, 3, 3]])
    x = x.repeat(2, 1)
    gen = torch.Generator().manual_seed(5)
    traj = sample_ctmc(
        policy,
        x,
        mask_id,
        tokens_per_step=tokens_per_step,
        temperature=temperature,
        reference_logits_fn=base,
        generator=gen,
    )
    # Structure: every masked position revealed exactly once, padding is -1 in both tensors.
    for b in range(x.shape[0]):
        revealed = traj.positions[b][traj.positions[b] >= 0]
        assert sorted(revealed.tolist()) == (x[b] == mask_id).nonzero().flatten().tolist()
    assert torch.equal(traj.positions < 0, traj.tokens < 0)
    assert torch.equal(traj.step_mask, (traj.positions >= 0).any(-1))
    assert torch.equal(traj.state_before_step(traj.num_steps), traj.final)

    hand_policy = _hand_step_log_probs(policy, traj, temperature, mask_id)
    hand_base = _hand_step_log_probs(base, traj, 1.0, mask_id)
    torch.testing.assert_close(traj.logp_policy.double(), hand_policy, atol=1e-5, rtol=0)
    torch.testing.assert_close(traj.logp_reference.double(), hand_base, atol=1e-5, rtol=0)

    ratio = path_log_ratio(traj.logp_reference, traj.logp_policy, traj.step_mask)
    torch.testing.assert_close(ratio.double(), (hand_base - hand_policy).sum(1), atol=1e-5, rtol=0)
    after_first = path_log_ratio(traj.logp_reference, traj.logp_policy, traj.step_mask, first_step=1)
    torch.testing.assert_close(after_first.double(), (hand_base - hand_policy)[:, 1:].sum(1), atol=1e-5, rtol=0)
    # A row without masks has an empty path: ratio exactly 0.
    assert (ratio[4::6] == 0).all() and len(ratio[4::6]) == 2


def test_path_log_ratio_masks_padded_steps():
    ref = torch.tensor([[-1.0, -2.0, 5.0], [-0.5, 7.0, 9.0]])
    pol = torch.tensor([[-1.5, -1.0, -3.0], [-0.25, 0.0, 1.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    torch.testing.assert_close(path_log_ratio(ref, pol, mask), torch.tensor([0.5 - 1.0, -0.25]))
    torch.testing.assert_close(path_log_ratio(ref, pol, mask, first_step=1), torch.tensor([-1.0, 0.0]))
    torch.testing.assert_close(path_log_ratio(ref, pol), torch.tensor([0.5 - 1.0 + 8.0, -0.25 + 7.0 + 8.0]))


def test_token_log_probs_excludes_mask_and_tempers():
    logits = torch.tensor([[0.3, -1.2, 2.0, 0.7]])
    out = token_log_probs(logits, mask_token_id=2, temperature=0.5)
    z = torch.tensor([0.3, -1.2, 0.7]) / 0.5
    expected = z - torch.logsumexp(z, 0)
    torch.testing.assert_close(out[0, [0, 1, 3]], expected)
    assert out[0, 2] == -math.inf
    with pytest.raises(ValueError):
        token_log_probs(logits, 2, temperature=0.0)


def test_inverse_cdf_never_draws_a_zero_probability_category():
    """A uniform of exactly 0 (which `torch.rand` can return) must not select a leading zero-mass category, e.g.
    the mask token when ``mask_token_id == 0``; boundaries of the CDF go to the next category with mass."""
    log_probs = torch.log(torch.tensor([[0.0, 0.5, 0.0, 0.5], [0.0, 0.0, 1.0, 0.0], [0.25, 0.25, 0.25, 0.25]]))
    drawn = _inverse_cdf(log_probs, torch.zeros(3))
    assert drawn.tolist() == [1, 2, 0]
    drawn = _inverse_cdf(log_probs, torch.tensor([0.7, 0.999999, 0.9]))
    assert drawn.tolist() == [3, 2, 3]
    drawn = _inverse_cdf(log_probs, torch.tensor([0.4999, 0.3, 0.2499]))
    assert drawn.tolist() == [1, 2, 0]


def test_jump_log_probs_values_and_gradient(toy):
    """`jump_log_probs` is the sum of masked-out log-softmax values over the revealed slots and is differentiable."""
    mask_id = 3
    model = toy.TableDenoiser(LENGTH, VOCAB, seed=7)
    table = model.table.clone().requires_grad_(True)

    def logits_fn(x):
        return table[toy.encode(x, VOCAB)]

    x = torch.tensor([[3, 3, 3, 3], [0, 3, 1, 3], [3, 2, 2, 2]])
    positions = torch.tensor([[0, 2], [3, -1], [0, -1]])
    tokens = torch.tensor([[1, 0], [2, -1], [1, -1]])
    out = jump_log_probs(logits_fn, x, positions, tokens, mask_id)

    expected = torch.zeros(3, dtype=torch.float64)
    for b in range(3):
        logp = torch.log(toy.token_probs(model(x[b : b + 1])[0], mask_id))
        for pos, tok in zip(positions[b].tolist(), tokens[b].tolist()):
            if pos >= 0:
                expected[b] += logp[pos, tok]
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=0)

    out.sum().backward()
    # d/dz log softmax(z)[v] = onehot(v) - p (mask excluded: its gradient is 0).
    code = int(toy.encode(x[0], VOCAB))
    p = toy.token_probs(model.table[code, 0], mask_id)
    expected_grad = -p
    expected_grad[1] += 1
    torch.testing.assert_close(table.grad[code, 0], expected_grad, atol=1e-5, rtol=0)
    assert table.grad[code, 1].abs().max() == 0  # position 1 was not revealed
    # The padded slot of row 1 contributes nothing.
    code1 = int(toy.encode(x[1], VOCAB))
    assert table.grad[code1, 0].abs().max() == 0 and table.grad[code1, 3].abs().max() > 0


def test_jump_log_probs_padded_slots_with_mask_id_zero(toy):
    """Padded slots (``-1``) read token 0; with mask id 0 that is the mask's -inf log-prob, which must not leak.

    They occur when k > 1 and fewer than k masks remain, and in the low-confidence sampler's padded slots.
    Before the fix the padded slot gave ``-inf * 0 = NaN`` in the value and the gradient.
    """
    mask_id = 0
    model = toy.TableDenoiser(LENGTH, VOCAB, seed=5)
    table = model.table.clone().requires_grad_(True)
    x = torch.tensor([[1, 0, 2, 3], [0, 0, 0, 0]])
    positions = torch.tensor([[1, -1], [2, 3]])
    tokens = torch.tensor([[3, -1], [1, 2]])
    out = jump_log_probs(lambda s: table[toy.encode(s, VOCAB)], x, positions, tokens, mask_id)
    logp0 = torch.log(toy.token_probs(model(x[:1])[0], mask_id))
    logp1 = torch.log(toy.token_probs(model(x[1:])[0], mask_id))
    expected = torch.stack([logp0[1, 3], logp1[2, 1] + logp1[3, 2]])
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=0)
    out.sum().backward()
    assert torch.isfinite(table.grad).all()


def test_jump_log_probs_matches_sampler_first_step(toy):
    mask_id = 3
    model = toy.TableDenoiser(LENGTH, VOCAB, seed=3)
    x = torch.full((64, LENGTH), mask_id)
    traj = sample_ctmc(model, x, mask_id, tokens_per_step=2, generator=torch.Generator().manual_seed(0))
    out = jump_log_probs(model, x, traj.positions[:, 0], traj.tokens[:, 0], mask_id)
    torch.testing.assert_close(out.float(), traj.logp_policy[:, 0], atol=1e-5, rtol=0)


def _counter_denoiser(scales: torch.Tensor, vocab: int, mask_id: int):
    """Token argmax = number of unmasked tokens (mod vocab - 1, so never the mask id vocab - 1); confidence rises with
    ``scales[b, i]``, so the output records at which call each position was committed."""

    def logits_fn(x):
        target = (x != mask_id).sum(1) % (vocab - 1)
        onehot = torch.nn.functional.one_hot(target, vocab).float()
        return onehot[:, None, :] * scales[: x.shape[0], :, None]

    return logits_fn


def test_low_confidence_decode_order_at_temperature_zero():
    """Blocks left to right; inside a block the most confident masked positions first; quotas [2, 1] per block."""
    mask_id, vocab = 9, 10
    prompt = [5, 6]
    scales = torch.tensor(
        [
            [0.0, 0.0, 1.0, 3.0, 2.0, 0.5, 2.5, 1.5],
            [0.0, 0.0, 3.0, 1.0, 2.0, 2.5, 0.5, 1.5],
        ]
    )
    x = torch.tensor([prompt + [mask_id] * 6, prompt + [mask_id] * 6])
    out = low_confidence_decode(_counter_denoiser(scales, vocab, mask_id), x, mask_id, steps=4, block_length=3)
    # Row 0, block 1 (cols 2-4, scales 1, 3, 2): call 1 (2 tokens known) commits cols 3, 4 with token 2; call 2
    # (4 known) commits col 2 with 4. Block 2 (cols 5-7, scales .5, 2.5, 1.5): cols 6, 7 get 5, then col 5 gets 7.
    assert out.tolist() == [[5, 6, 4, 2, 2, 7, 5, 5], [5, 6, 2, 4, 2, 5, 7, 5]]

    # One token per call: the order is the confidence order inside each block.
    out = low_confidence_decode(_counter_denoiser(scales, vocab, mask_id), x, mask_id, steps=6, block_length=3)
    assert out.tolist() == [[5, 6, 4, 2, 3, 7, 5, 6], [5, 6, 2, 4, 3, 5, 7, 6]]

    # A single block: global confidence order across the whole completion.
    out = low_confidence_decode(_counter_denoiser(scales[:1], vocab, mask_id), x[:1], mask_id, steps=6, block_length=6)
    assert out.tolist() == [[5, 6, 6, 2, 4, 7, 3, 5]]


def test_low_confidence_decode_rejects_bad_shapes():
    x = torch.tensor([[1, 9, 9, 9, 9]])

    def fn(s):
        return torch.zeros(*s.shape, 10)

    with pytest.raises(ValueError):
        low_confidence_decode(fn, x, 9, steps=2, block_length=3)
    with pytest.raises(ValueError):
        low_confidence_decode(fn, x, 9, steps=3, block_length=2)
    with pytest.raises(ValueError):
        low_confidence_decode(fn, x, 9, steps=2, block_length=2, remasking="nope")


# ---------------------------------------------------------------------------------------------- memory at 8B scale


def _reference_low_confidence_decode(logits_fn, x, mask_id, steps, block_length, completion_start):
    """The straightforward greedy schedule: full-sequence float32 softmax, top-k per row and call."""
    state = x.clone()
    num_blocks = (x.shape[1] - completion_start) // block_length
    per_block = steps // num_blocks
    for block in range(num_blocks):
        lo, hi = completion_start + block * block_length, completion_start + (block + 1) * block_length
        masked_count = (state[:, lo:hi] == mask_id).sum(1)
        quota = [[int(n) // per_block + (c < int(n) % per_block) for c in range(per_block)] for n in masked_count]
        for call in range(per_block):
            logits = logits_fn(state).float()
            logits[..., mask_id] = float("-inf")
            candidate = logits.argmax(-1)
            confidence = torch.softmax(logits, -1).gather(-1, candidate.unsqueeze(-1)).squeeze(-1)
            in_block = torch.zeros_like(state, dtype=torch.bool)
            in_block[:, lo:hi] = True
            confidence = confidence.masked_fill(~((state == mask_id) & in_block), float("-inf"))
            for b in range(state.shape[0]):
                if quota[b][call]:
                    chosen = torch.topk(confidence[b], quota[b][call]).indices
                    state[b, chosen] = candidate[b, chosen]
    return state


def test_low_confidence_decode_equals_reference_and_never_builds_full_float32_logits():
    from memory_probe import Float32VocabProbe, bf16_denoiser

    vocab, mask_id, prompt, completion, block = 97, 96, 24, 32, 8
    logits_fn = bf16_denoiser(vocab, prompt + completion)
    x = torch.randint(0, 90, (3, prompt + completion), generator=torch.Generator().manual_seed(0))
    x[:, prompt:] = mask_id
    x[1, prompt + 3] = 5  # a row with a pre-filled completion token gets a smaller quota in its block
    with Float32VocabProbe(vocab) as probe:
        out = low_confidence_decode(logits_fn, x, mask_id, steps=16, block_length=block)
    expected = _reference_low_confidence_decode(logits_fn, x, mask_id, 16, block, prompt)
    assert torch.equal(out, expected)
    assert not (out == mask_id).any()
    # The largest float32 vocabulary-wide tensor is one block's scores (full length would be 7x as large).
    assert 0 < probe.largest_bytes <= 3 * block * vocab * 4


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sample_low_confidence_float32_memory_is_one_block(temperature):
    from memory_probe import Float32VocabProbe, bf16_denoiser

    vocab, mask_id, prompt, completion, block = 97, 96, 24, 32, 8
    policy, reference = bf16_denoiser(vocab, prompt + completion), bf16_denoiser(vocab, prompt + completion, seed=1)
    x = torch.full((3, prompt + completion), mask_id)
    x[:, :prompt] = 7
    with Float32VocabProbe(vocab) as probe:
        traj = sample_low_confidence(
            policy,
            x,
            mask_id,
            steps=16,
            block_length=block,
            temperature=temperature,
            reference_logits_fn=reference,
            generator=torch.Generator().manual_seed(0),
        )
    assert 0 < probe.largest_bytes <= 3 * block * vocab * 4
    # The recorded log-probs are the full-softmax ones (float32 of the bf16 logits).
    state = traj.state_before_step(5)
    rows = torch.arange(3).unsqueeze(1)
    pos, tok = traj.positions[:, 5], traj.tokens[:, 5]
    full = token_log_probs(policy(state).float(), mask_id, temperature)[rows, pos.clamp(min=0)]
    expected = (full.gather(-1, tok.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (pos >= 0)).sum(1)
    torch.testing.assert_close(traj.logp_policy[:, 5], expected)


def test_selected_token_log_probs_equals_full_log_softmax_and_its_gradient():
    logits = torch.randn(2, 5, 11, dtype=torch.float64).requires_grad_(True)
    tokens = torch.randint(0, 10, (2, 5))
    for temperature in (1.0, 0.6):
        full = (
            torch.log_softmax((logits / temperature).masked_fill(torch.arange(11) == 10, float("-inf")).float(), -1)
            .gather(-1, tokens.unsqueeze(-1))
            .squeeze(-1)
        )
        picked = selected_token_log_probs(logits, tokens, mask_token_id=10, temperature=temperature)
        assert picked.dtype == torch.float32
        torch.testing.assert_close(picked, full)
        (g_full,) = torch.autograd.grad(full.sum(), logits)
        (g_picked,) = torch.autograd.grad(picked.sum(), logits)
        torch.testing.assert_close(g_picked, g_full, atol=1e-6, rtol=1e-5)  # float32 maths, float64 leaves
        assert g_picked[..., 10].abs().max() == 0  # the mask id is outside the support


@pytest.mark.parametrize("sampler", ["ctmc", "low_confidence"])
def test_reference_rows_skip_the_reference_and_leave_the_path_alone(sampler):
    """`reference_rows`: the reference is never called on the unflagged rows, which record 0; the path (the
    reference draws no random number) and the flagged rows' reference log-probs are those of a run with the
    reference on every row."""
    gen = torch.Generator().manual_seed(0)
    policy_table = torch.randn(4, 6, 5, generator=gen)
    reference_table = torch.randn(4, 6, 5, generator=gen)
    seen = []

    def policy(x):  # row-independent, so a subset of rows gives the same numbers
        return policy_table[x[:, 0] % 4] + 0.3 * x[:, :, None].float()

    def reference(x):
        seen.append(x[:, 0].clone())
        return reference_table[x[:, 0] % 4] + 0.1 * x[:, :, None].float()

    x = torch.tensor([[0, 4, 4, 4, 4, 4], [1, 4, 2, 4, 4, 4], [2, 4, 4, 4, 4, 4], [3, 1, 4, 4, 4, 4]])
    flags = torch.tensor([True, False, True, False])

    def run(**kwargs):
        if sampler == "ctmc":
            return sample_ctmc(
                policy, x, 4, reference_logits_fn=reference, generator=torch.Generator().manual_seed(1), **kwargs
            )
        return sample_low_confidence(
            policy,
            x,
            4,
            steps=4,
            block_length=5,
            completion_start=1,
            reference_logits_fn=reference,
            generator=torch.Generator().manual_seed(1),
            **kwargs,
        )

    every = run()
    seen.clear()
    some = run(reference_rows=flags)
    assert seen and all(set(first.tolist()) <= {0, 2} for first in seen)  # row i starts with token i
    assert torch.equal(some.final, every.final) and torch.equal(some.logp_policy, every.logp_policy)
    torch.testing.assert_close(some.logp_reference[flags], every.logp_reference[flags], rtol=0, atol=0)
    assert (some.logp_reference[~flags] == 0).all() and (every.logp_reference[~flags] != 0).any()
    with pytest.raises(ValueError, match=r"reference_rows must be a BoolTensor\[4\]"):
        run(reference_rows=flags[:3])
