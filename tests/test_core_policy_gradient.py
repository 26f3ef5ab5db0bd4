"""diffu-GRPO (D1) core: group advantages, mean-field log-probs and the clipped loss, by hand."""

from __future__ import annotations

import math

import pytest
import torch

from trl_dam.core import diffu_grpo_loss, group_normalized_advantages, mean_field_token_log_probs, token_log_probs

pytestmark = pytest.mark.usefixtures("single_thread")


def test_group_normalized_advantages_by_hand():
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 1.0, 5.0, 5.0, 5.0, 5.0])
    std1 = math.sqrt(5 / 3)  # unbiased std of [1, 2, 3, 4]
    std2 = 0.5  # unbiased std of [0, 0, 0, 1]
    expected = [(r - 2.5) / (std1 + 1e-4) for r in (1, 2, 3, 4)] + [(r - 0.25) / (std2 + 1e-4) for r in (0, 0, 0, 1)]
    expected += [0.0] * 4  # constant group: no signal, no division by zero
    torch.testing.assert_close(group_normalized_advantages(rewards, 4), torch.tensor(expected))
    centred = [-1.5, -0.5, 0.5, 1.5, -0.25, -0.25, -0.25, 0.75, 0, 0, 0, 0]
    torch.testing.assert_close(group_normalized_advantages(rewards, 4, scale_rewards=False), torch.tensor(centred))


def test_diffu_grpo_loss_value_and_gradient_sign():
    old = torch.tensor([[0.0, -1.0, -2.0], [0.0, -1.0, -0.3]])
    delta = torch.tensor([[7.0, 0.1, 0.5], [7.0, -0.5, 0.05]])  # column 0 is prompt: ignored
    logp = (old + delta).requires_grad_(True)
    adv = torch.tensor([1.0, -0.5])
    mask = torch.tensor([[False, True, True], [False, True, True]])
    loss = diffu_grpo_loss(logp, old, adv, mask, epsilon=0.2)
    # Row 0 (A = 1): e^0.1 unclipped; e^0.5 clipped to 1.2. Row 1 (A = -0.5): min picks the clipped 0.8 * A for
    # e^-0.5, and e^0.05 * A for the unclipped token.
    row0 = (math.exp(0.1) + 1.2) / 2
    row1 = (0.8 * -0.5 + math.exp(0.05) * -0.5) / 2
    torch.testing.assert_close(loss, torch.tensor(-(row0 + row1) / 2))
    (grad,) = torch.autograd.grad(loss, logp)
    expected = torch.tensor([[0.0, -0.25 * math.exp(0.1), 0.0], [0.0, 0.0, 0.25 * 0.5 * math.exp(0.05)]])
    torch.testing.assert_close(grad, expected)
    # Sign: raising the log-prob of a positive-advantage token lowers the loss, of a negative one raises it.
    assert grad[0, 1] < 0 < grad[1, 2]

    ref = old + torch.tensor([[0.0, 0.3, -0.2], [0.0, 0.0, 0.1]])
    with_kl = diffu_grpo_loss(logp, old, adv, mask, epsilon=0.2, beta=0.1, ref_logp=ref)
    d = ref - logp.detach()
    k3 = (torch.exp(d) - d - 1) * mask
    torch.testing.assert_close(with_kl, loss.detach() + 0.1 * (k3.sum(1) / 2).mean())
    with pytest.raises(ValueError):
        diffu_grpo_loss(logp, old, adv, mask, beta=0.1)


def test_mean_field_token_log_probs(toy):
    mask_id, vocab = 3, 4
    model = toy.TableDenoiser(5, vocab, seed=51)
    seen = []

    def logits_fn(x):
        seen.append(x.clone())
        return model(x)

    seqs = torch.tensor([[0, 1, 2, 2, 0], [2, 2, 1, 0, 1]])
    completion = torch.tensor([[False, False, True, True, True], [False, False, False, True, True]])
    out = mean_field_token_log_probs(logits_fn, seqs, completion, mask_id, p_mask_prompt=0.0)
    masked_input = torch.where(completion, torch.full_like(seqs, mask_id), seqs)
    assert torch.equal(seen[-1], masked_input)
    expected = torch.log(toy.token_probs(model(masked_input), mask_id)).gather(-1, seqs.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(out.double(), expected * completion, atol=1e-6, rtol=0)
    assert (out[~completion] == 0).all()
    torch.testing.assert_close(
        out, token_log_probs(model(masked_input), mask_id).gather(-1, seqs[..., None])[..., 0] * completion
    )

    # p_mask_prompt = 1: the whole input is masked; in between each prompt token is dropped with that probability.
    mean_field_token_log_probs(logits_fn, seqs, completion, mask_id, p_mask_prompt=1.0)
    assert (seen[-1] == mask_id).all()
    long_seqs = torch.zeros(4000, 10, dtype=torch.long)
    long_completion = torch.zeros(4000, 10, dtype=torch.bool)
    long_completion[:, 8:] = True
    gen = torch.Generator().manual_seed(0)
    mean_field_token_log_probs(
        lambda x: (seen.append(x), torch.zeros(*x.shape, vocab))[1], long_seqs, long_completion, mask_id, 0.3, gen
    )
    dropped = (seen[-1][:, :8] == mask_id).double().mean()
    assert abs(float(dropped) - 0.3) < 5 * math.sqrt(0.3 * 0.7 / 32000)
    assert (seen[-1][:, 8:] == mask_id).all()


def test_mean_field_log_probs_read_only_the_completion_columns_in_float32():
    """Equal to the full-sequence log-softmax (values and gradients) while the largest float32 vocabulary-wide tensor
    is ``[batch, completion, vocab]`` (never ``[batch, length, vocab]``)."""
    from memory_probe import Float32VocabProbe, bf16_denoiser

    vocab, mask_id, prompt, completion = 97, 96, 40, 24
    logits_fn = bf16_denoiser(vocab, prompt + completion, requires_grad=True)
    sequences = torch.randint(0, 90, (3, prompt + completion), generator=torch.Generator().manual_seed(1))
    mask = torch.zeros_like(sequences, dtype=torch.bool)
    mask[:, prompt:] = True
    mask[2, -4:] = False  # a completion that ended early: its tail does not count
    with Float32VocabProbe(vocab) as probe:
        logp = mean_field_token_log_probs(logits_fn, sequences, mask, mask_id, 0.3, torch.Generator().manual_seed(0))
        (grad,) = torch.autograd.grad(logp.sum(), logits_fn.table)
    assert 0 < probe.largest_bytes <= 3 * completion * vocab * 4

    masked = sequences.clone()
    noise = torch.rand(sequences.shape, generator=torch.Generator().manual_seed(0))
    masked[mask | ((~mask) & (noise < 0.3))] = mask_id
    full = token_log_probs(logits_fn(masked).float(), mask_id).gather(-1, sequences.unsqueeze(-1)).squeeze(-1) * mask
    torch.testing.assert_close(logp, full)
    assert logp[:, :prompt].abs().max() == 0 and logp[2, -4:].abs().max() == 0
    (expected_grad,) = torch.autograd.grad(full.sum(), logits_fn.table)
    torch.testing.assert_close(grad, expected_grad)
