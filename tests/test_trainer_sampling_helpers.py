"""Core helpers the trainers rely on: `remask` (training states), `sample_low_confidence` (recorded LLaDA decoding),
`gather_jump_log_probs`, and the trainer's chunked sampling."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
import torch
from datasets import Dataset

from trl_dam.core import (
    gather_jump_log_probs,
    jump_log_probs,
    low_confidence_decode,
    remask,
    sample_low_confidence,
    token_log_probs,
)

MASK = 9


def random_denoiser(vocab: int = 10, seed: int = 0):
    """A state-dependent denoiser: logits are a fixed random projection of the one-hot state."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(vocab, vocab, generator=gen)
    mixing = torch.randn(8, 8, generator=gen)

    def logits_fn(x: torch.Tensor) -> torch.Tensor:
        one_hot = torch.nn.functional.one_hot(x, vocab).float()
        context = torch.einsum("ij,bjv->biv", mixing[: x.shape[1], : x.shape[1]], one_hot)
        return 2 * context @ weight

    return logits_fn


def test_remask_counts_are_uniform_and_prompt_untouched():
    x1 = torch.arange(8).repeat(4000, 1)  # columns 0-1 prompt, 2-7 completion (N = 6)
    maskable = torch.zeros_like(x1, dtype=torch.bool)
    maskable[:, 2:] = True
    gen = torch.Generator().manual_seed(0)
    x_t, revealed = remask(x1, maskable, MASK, gen)
    assert torch.equal(x_t[:, :2], x1[:, :2])
    kept = x_t[:, 2:] != MASK
    assert torch.equal(kept.sum(1), revealed)  # exactly n revealed, the others masked
    assert torch.equal(x_t[:, 2:][kept], x1[:, 2:][kept])  # revealed tokens are X1's
    counts = torch.bincount(revealed, minlength=7).float() / len(revealed)
    assert counts[6] == 0  # never fully revealed: a state always has a jump to train on
    torch.testing.assert_close(counts[:6], torch.full((6,), 1 / 6), atol=0.03, rtol=0)
    # Given n, the revealed subset is uniform: every completion position is kept with probability E[n] / N.
    torch.testing.assert_close(kept.float().mean(0), torch.full((6,), 2.5 / 6), atol=0.03, rtol=0)


def test_remask_respects_per_row_maskable_sets():
    x1 = torch.arange(6).repeat(3, 1)
    maskable = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    x_t, revealed = remask(x1, maskable, MASK, torch.Generator().manual_seed(1))
    assert revealed[1] == 0 and x_t[1, 5] == MASK and torch.equal(x_t[1, :5], x1[1, :5])
    assert revealed[2] == 0 and torch.equal(x_t[2], x1[2])  # nothing maskable: untouched


def test_gather_jump_log_probs_matches_per_row_jumps():
    logits_fn = random_denoiser()
    x = torch.tensor([[1, MASK, MASK, 2, MASK, MASK, 3, MASK]] * 2)
    positions = torch.tensor([[[1, 2], [4, -1], [7, 5]], [[2, 1], [5, 7], [4, -1]]])  # [B=2, K=3, k=2]
    tokens = torch.tensor([[[3, 4], [5, 0], [6, 7]], [[1, 2], [3, 4], [5, 0]]])
    shared = gather_jump_log_probs(logits_fn(x), positions, tokens, MASK)
    separate = jump_log_probs(logits_fn, x.repeat_interleave(3, 0), positions.view(6, 2), tokens.view(6, 2), MASK)
    torch.testing.assert_close(shared, separate.view(2, 3))


def test_sample_low_confidence_recovers_greedy_decoding_at_low_temperature():
    logits_fn = random_denoiser()
    x = torch.tensor([[1, 2, MASK, MASK, MASK, MASK, MASK, MASK]] * 3)
    greedy = low_confidence_decode(logits_fn, x, MASK, steps=4, block_length=3, temperature=0.0)
    traj = sample_low_confidence(logits_fn, x, MASK, steps=4, block_length=3, temperature=1e-4)
    assert torch.equal(traj.final, greedy)


def test_sample_low_confidence_records_its_path():
    logits_fn, reference_fn = random_denoiser(seed=0), random_denoiser(seed=1)
    x = torch.tensor([[1, 2, MASK, 4, 5, MASK, MASK, MASK], [1, 2, MASK, MASK, MASK, MASK, MASK, MASK]])
    gen = torch.Generator().manual_seed(0)
    traj = sample_low_confidence(
        logits_fn, x, MASK, steps=4, block_length=3, temperature=0.7, reference_logits_fn=reference_fn, generator=gen
    )
    assert not (traj.final == MASK).any()
    assert torch.equal(traj.step_mask.sum(1), torch.tensor([3, 4]))  # row 0's one block-0 mask needs one call
    for s in range(traj.num_steps):
        state = traj.state_before_step(s)
        pos, tok = traj.positions[:, s], traj.tokens[:, s]
        valid = pos >= 0
        assert ((pos < 5) | ~valid).all() if s < 2 else ((pos >= 5) | ~valid).all()  # block by block
        assert (state.gather(1, pos.clamp(min=0))[valid] == MASK).all()  # only masked positions are written
        rows = torch.arange(2).unsqueeze(1)
        for fn, recorded, temperature in (
            (logits_fn, traj.logp_policy, 0.7),
            (reference_fn, traj.logp_reference, 1.0),
        ):
            logp = token_log_probs(fn(state)[rows, pos.clamp(min=0)], MASK, temperature)
            expected = (logp.gather(-1, tok.clamp(min=0).unsqueeze(-1)).squeeze(-1) * valid).sum(1)
            torch.testing.assert_close(recorded[:, s], expected)


def test_sample_low_confidence_rejects_zero_temperature():
    with pytest.raises(ValueError, match="temperature"):
        sample_low_confidence(
            random_denoiser(), torch.full((1, 4), MASK), MASK, steps=2, block_length=2, temperature=0
        )


@pytest.mark.parametrize("sampler", ["ctmc", "low_confidence"])
def test_trainer_chunked_sampling_records_consistent_paths(tmp_path, sampler):
    """`sampling_batch_size` chunks with different step counts are padded and concatenated without misalignment."""
    from trl_dam.models import build_char_tokenizer, build_tiny_masked_lm
    from trl_dam.trainers import DAMConfig, DAMTrainer

    tokenizer = build_char_tokenizer("abc")
    args = DAMConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        report_to="none",
        num_generations=2,
        per_device_train_batch_size=2,
        max_completion_length=4,
        sampling_batch_size=2,
        sampler=sampler,
        block_length=2,
        diffusion_steps=4 if sampler == "low_confidence" else 2,
    )
    model = build_tiny_masked_lm(tokenizer, kind="llada", seed=0)
    dataset = Dataset.from_dict({"prompt": ["a", "bb"]})
    trainer = DAMTrainer(
        model,
        lambda completions, **kw: [0.0] * len(completions),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    x = trainer._canvas(trainer._tokenize_prompts(["a", "bb", "abc", "c", "b"]))
    x[4, -4:-1] = tokenizer.convert_tokens_to_ids("a")  # one mask left: the last chunk needs fewer steps
    traj = trainer._sample(x, with_reference=True)
    assert traj.final.shape == x.shape and not (traj.final == trainer.mask_token_id).any()
    torch.testing.assert_close(traj.logp_reference, traj.logp_policy)  # the policy starts at the reference
    policy = trainer._denoiser(trainer.model)
    rows = torch.arange(len(x)).unsqueeze(1)
    for s in range(traj.num_steps):
        state = traj.state_before_step(s)
        pos, tok = traj.positions[:, s], traj.tokens[:, s]
        logp = token_log_probs(policy(state)[rows, pos.clamp(min=0)], trainer.mask_token_id)
        expected = (logp.gather(-1, tok.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (pos >= 0)).sum(1)
        torch.testing.assert_close(traj.logp_policy[:, s], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["dream", "llada"])
def test_checkpointing_kwargs_survive_the_rollouts(tmp_path, kind):
    """`gradient_checkpointing_kwargs` are the same after training steps (rollouts in between) as before: transformers'
    checkpointing for Dream, the model's own `set_activation_checkpointing` for LLaDA, which checkpoints only the
    gradient forwards (never a rollout)."""
    from trainer_helpers import build_trainer, char_tokenizer, cpu_config_kwargs

    from trl_dam.models import build_tiny_masked_lm
    from trl_dam.trainers import DAMConfig, DAMTrainer

    kwargs = {"use_reentrant": False, "preserve_rng_state": False}
    tokenizer = char_tokenizer()
    args = DAMConfig(
        **cpu_config_kwargs(tmp_path, max_steps=2, gradient_checkpointing=True, gradient_checkpointing_kwargs=kwargs)
    )
    trainer = build_trainer(DAMTrainer, args, tokenizer, model=build_tiny_masked_lm(tokenizer, kind))
    backbone = trainer.model.model
    if kind == "llada":
        assert backbone.activation_checkpointing_strategy == "whole_layer"
        original = backbone._activation_checkpoint_fn
        assert original.keywords == kwargs
        grad_modes = []

        def counting(*a, **kw):
            grad_modes.append(torch.is_grad_enabled())
            return original(*a, **kw)

        backbone._activation_checkpoint_fn = counting
    trainer.train()
    if kind == "dream":
        assert backbone.gradient_checkpointing
        assert backbone._gradient_checkpointing_func.keywords == kwargs
    else:
        assert backbone.activation_checkpointing_strategy == "whole_layer"
        assert backbone._activation_checkpoint_fn is counting
        assert grad_modes and all(grad_modes)  # two blocks per gradient forward, none in the rollouts
        assert len(grad_modes) % trainer.model.config.n_layers == 0
        assert trainer.ref_model.model.activation_checkpointing_strategy is None  # the frozen copy never checkpoints
