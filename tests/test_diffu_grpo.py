"""End-to-end tests of `DiffuGRPOTrainer` / `DiffuGRPOConfig` on a tiny LLaDA-shaped model built in code (CPU)."""

from __future__ import annotations

import copy
import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
import torch
from datasets import Dataset
from trainer_helpers import PROMPTS, N, build_trainer, char_tokenizer, cpu_config_kwargs, frac_a, history, tiny_model

from trl_dam.core import diffu_grpo_loss, group_normalized_advantages, mean_field_token_log_probs
from trl_dam.trainers import DiffuGRPOConfig, DiffuGRPOTrainer


@pytest.fixture(scope="module")
def tokenizer():
    return char_tokenizer()


def make_args(tmp_path, **overrides) -> DiffuGRPOConfig:
    return DiffuGRPOConfig(**cpu_config_kwargs(tmp_path, **{"block_length": N, **overrides}))


def make_trainer(tmp_path, tokenizer, reward_funcs=frac_a, dataset=None, model=None, **overrides) -> DiffuGRPOTrainer:
    return build_trainer(DiffuGRPOTrainer, make_args(tmp_path, **overrides), tokenizer, reward_funcs, dataset, model)


def reference_log_probs(trainer, model, sequences, seed):
    """Mean-field log-probs of the completions, straight from the core function (pads restored, as the trainer)."""
    completion = torch.zeros_like(sequences, dtype=torch.bool)
    completion[:, -N:] = True
    padding = (sequences != trainer.pad_token_id).cumsum(1) == 0

    def logits_fn(x):
        x = torch.where(padding, sequences, x)
        return trainer.adapter.logits(model, x, trainer._attention_mask(x))

    generator = torch.Generator().manual_seed(seed)
    out = mean_field_token_log_probs(
        logits_fn, sequences, completion, trainer.mask_token_id, trainer.args.p_mask_prompt, generator
    )
    return out[:, -N:]


# ---------------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"beta": -0.1}, "beta"),
        ({"epsilon": 0.0}, "epsilon"),
        ({"num_iterations": 0}, "num_iterations"),
        ({"p_mask_prompt": 1.0}, "p_mask_prompt"),
        ({"loss_normalization": "batch"}, "loss_normalization"),
        ({"num_generations": 1, "per_device_train_batch_size": 1}, "num_generations"),
        ({"per_device_train_batch_size": 6}, "per_device_train_batch_size"),
        ({"block_length": 4}, "block_length"),
        ({"temperature": 0.0}, "temperature"),
        ({"beta": float("inf")}, "beta"),
        ({"epsilon": float("nan")}, "epsilon"),
        ({"reward_weights": [float("nan")]}, "reward_weights"),
    ],
)
def test_invalid_config_names_the_field(tmp_path, overrides, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        make_args(tmp_path, **overrides)


def test_config_defaults_follow_d1(tmp_path):
    args = DiffuGRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none")
    assert (args.p_mask_prompt, args.epsilon, args.beta, args.num_iterations) == (0.15, 0.2, 0.04, 1)
    assert args.sampler == "low_confidence" and args.block_length == 32 and args.temperature == 0.9
    assert args.scale_rewards is False and args.loss_normalization == "token"
    assert args.max_completion_length == 128 and args.diffusion_steps == 64  # length / 2: two tokens per call
    assert args.gradient_checkpointing is False and args.remove_unused_columns is False
    # Rounded up to a multiple of the number of blocks: 96 tokens, blocks of 32 -> 48 steps (16 per block).
    assert make_args(tmp_path, max_completion_length=96, block_length=32).diffusion_steps == 48
    assert make_args(tmp_path, max_completion_length=6, block_length=2).diffusion_steps == 3
    assert make_args(tmp_path, diffusion_steps=6).diffusion_steps == 6
    assert DiffuGRPOConfig.__dataclass_fields__["p_mask_prompt"].metadata["help"]


# ---------------------------------------------------------------------------------------------------- acceptance


def test_reward_rises(tmp_path, tokenizer):
    """Acceptance: the fraction of "a" in fresh samples rises clearly within 20 steps at a fixed seed.

    Measured (model and run seeds 0/1/2): first-3-step mean 0.13/0.12/0.14 -> last-5-step mean 0.84/0.67/0.94.
    """
    trainer = make_trainer(
        tmp_path, tokenizer, max_steps=20, per_device_train_batch_size=16, num_generations=8, temperature=1.0
    )
    trainer.train()
    rewards = history(trainer, "reward")
    assert len(rewards) == 20
    first, last = sum(rewards[:3]) / 3, sum(rewards[-5:]) / 5
    assert first < 0.2
    assert last >= first + 0.4, (first, last)
    for key in ("loss", "reward_std", "rewards/frac_a/mean", "kl", "clip_ratio/region_mean", "reward_calls"):
        assert history(trainer, key), key
    assert history(trainer, "reward_calls")[0] == 16
    kl = history(trainer, "kl")
    assert kl[0] < 1e-6 < kl[-1]  # starts at the reference, then moves away


# ---------------------------------------------------------------------------------------------------- the loss


def test_loss_equals_hand_computation(tmp_path, tokenizer):
    """On a fixed batch the trainer's loss is d1's token-mean clipped objective, from the core functions."""
    trainer = make_trainer(tmp_path, tokenizer, num_iterations=2, p_mask_prompt=0.5, beta=0.3, epsilon=0.2)
    trainer.model.train()
    rows = [{"prompt": p} for p in PROMPTS[:2] for _ in range(4)]
    inputs = trainer._prepare_inputs(rows)
    sequences = inputs["sequences"]
    assert inputs["iteration"] == 0 and sequences.shape[0] == 8

    # Advantages: rewards centred within each group of 4, not divided by the std (d1).
    completions = trainer.processing_class.batch_decode(sequences[:, -N:], skip_special_tokens=True)
    rewards = torch.tensor(frac_a(completions))
    torch.testing.assert_close(inputs["advantages"], group_normalized_advantages(rewards, 4, scale_rewards=False))
    # Loss mask: completion tokens up to and including the first EOS.
    eos = sequences[:, -N:] == tokenizer.eos_token_id
    expected_mask = torch.arange(N) <= torch.where(eos.any(1), eos.int().argmax(1), N).unsqueeze(1)
    assert torch.equal(inputs["loss_mask"], expected_mask)
    assert not expected_mask.all()  # at this seed a completion ends early: the mask matters

    # Move the policy away from the sampler so that the ratios differ from 1 (and some clip), then use iteration 1.
    sampler_model = copy.deepcopy(trainer.model)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    inputs = {**inputs, "iteration": 1}
    seed = int(inputs["seeds"][1])
    loss = trainer.compute_loss(trainer.model, inputs)

    logp = reference_log_probs(trainer, trainer.model, sequences, seed)
    old = reference_log_probs(trainer, sampler_model, sequences, seed)
    ref = reference_log_probs(trainer, sampler_model, sequences, seed)  # no PEFT: the frozen initial copy
    torch.testing.assert_close(inputs["old_logp"][0], old)
    torch.testing.assert_close(inputs["ref_logp"][1], ref)
    ratio = torch.exp(logp - old)
    adv = inputs["advantages"].unsqueeze(1)
    term = torch.minimum(ratio * adv, ratio.clamp(0.8, 1.2) * adv) - 0.3 * (torch.exp(ref - logp) - (ref - logp) - 1)
    mask = inputs["loss_mask"]
    expected = -(term * mask).sum() / mask.sum()
    torch.testing.assert_close(loss, expected)
    assert ((ratio - 1).abs() > 0.2)[mask].any()  # the clipping branch is exercised

    # "sequence" normalisation is the core loss as is.
    trainer.args.loss_normalization = "sequence"
    per_sequence = trainer.compute_loss(trainer.model, inputs)
    torch.testing.assert_close(per_sequence, diffu_grpo_loss(logp, old, inputs["advantages"], mask, 0.2, 0.3, ref))
    trainer.args.loss_normalization = "token"


def test_num_iterations_reuse_the_first_iterations_old_log_probs(tmp_path, tokenizer):
    """mu = 2: one generation round per 2 steps; the second step's ratio uses the sampling model's log-probs."""
    trainer = make_trainer(tmp_path, tokenizer, num_iterations=2, max_steps=4, beta=0.0)
    rounds, seen = {}, []
    original_loss, original_round = trainer._loss, trainer._generation_round

    def recording_loss(logp, old, advantages, mask, ref):
        seen.append((trainer.state.global_step, logp.detach().clone(), old.clone()))
        return original_loss(logp, old, advantages, mask, ref)

    def recording_round(rows, num_slices, num_iterations):
        snapshot = copy.deepcopy(trainer.model)
        out = original_round(rows, num_slices, num_iterations)
        rounds[trainer.state.global_step] = (snapshot, out[0])
        return out

    trainer._loss, trainer._generation_round = recording_loss, recording_round
    trainer.train()
    assert sorted(rounds) == [0, 2]  # generation rounds at steps 0 and 2 only
    assert history(trainer, "reward_calls") == [8, 8]
    assert [step for step, _, _ in seen] == [0, 1, 2, 3]
    for step, logp, old in seen:
        if step % 2 == 0:
            assert torch.equal(logp, old)  # first iteration: old = current, detached
            continue
        sampler_model, item = rounds[step - 1]
        expected = reference_log_probs(trainer, sampler_model, item["sequences"], int(item["seeds"][1]))
        torch.testing.assert_close(old, expected)
        torch.testing.assert_close(old, item["old_logp"][0])
        assert not torch.allclose(old, logp)  # the model moved during the first iteration


def test_gradient_accumulation_slices_one_round(tmp_path, tokenizer):
    trainer = make_trainer(tmp_path, tokenizer, gradient_accumulation_steps=2, num_iterations=2, max_steps=2)
    rows_seen = []
    original = trainer._prepare_inputs

    def recording(rows):
        out = original(rows)
        rows_seen.append(out["sequences"])
        return out

    trainer._prepare_inputs = recording
    trainer.train()
    assert history(trainer, "reward_calls") == [16]  # one round: 2 micro-batches x 8 completions
    assert len(rows_seen) == 4
    assert torch.equal(rows_seen[0], rows_seen[2]) and torch.equal(rows_seen[1], rows_seen[3])
    assert not torch.equal(rows_seen[0], rows_seen[1])


# ---------------------------------------------------------------------------------------------------- reference


def test_peft_reference_is_base_with_adapters_disabled(tmp_path, tokenizer):
    from peft import LoraConfig

    base = tiny_model(tokenizer)
    base_copy = copy.deepcopy(base)
    args = make_args(tmp_path, max_steps=3, beta=0.1)
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    trainer = DiffuGRPOTrainer(
        base,
        frac_a,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    assert trainer.ref_model is None
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    adapters = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert adapters and all("lora_" in n for n in adapters)
    trainer.train()
    for name, param in trainer.model.named_parameters():
        if name in frozen:
            assert torch.equal(param, frozen[name]), name
    assert any(not torch.equal(p, adapters[n]) for n, p in trainer.model.named_parameters() if n in adapters)

    # A new round's reference log-probs are the initial base model's, although the adapters have moved.
    trainer.model.train()
    item = trainer._generation_round([{"prompt": p} for p in PROMPTS[:2] for _ in range(4)], 1, 1)[0]
    expected = reference_log_probs(trainer, base_copy, item["sequences"], int(item["seeds"][0]))
    torch.testing.assert_close(item["ref_logp"][0], expected)
    policy = reference_log_probs(trainer, trainer.model, item["sequences"], int(item["seeds"][0]))
    assert not torch.allclose(policy, expected)
    assert history(trainer, "kl")[-1] > 0


def test_beta_zero_has_no_reference(tmp_path, tokenizer):
    trainer = make_trainer(tmp_path, tokenizer, beta=0.0, max_steps=2)
    assert trainer.ref_model is None
    trainer.train()
    assert not history(trainer, "kl") and len(history(trainer, "loss")) == 2


# ---------------------------------------------------------------------------------------------------- options


def test_ctmc_sampler_scaled_rewards_and_evaluate(tmp_path, tokenizer):
    trainer = make_trainer(
        tmp_path, tokenizer, sampler="ctmc", scale_rewards=True, per_device_eval_batch_size=2, max_steps=2
    )
    trainer.train()
    assert all(torch.isfinite(torch.tensor(history(trainer, "loss"))))
    metrics = trainer.evaluate(eval_dataset=Dataset.from_dict({"prompt": PROMPTS[:4]}))
    for key in ("eval_loss", "eval_reward", "eval_rewards/frac_a/mean", "eval_kl"):
        assert key in metrics, key


def test_conversational_prompts(tmp_path, tokenizer):
    seen = {}

    def reward(prompts, completions, **kwargs):
        seen["prompt"], seen["completion"] = prompts[0], completions[0]
        return frac_a(completions)

    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in PROMPTS]})
    trainer = make_trainer(tmp_path, tokenizer, reward_funcs=reward, dataset=dataset, max_steps=1)
    trainer.train()
    assert seen["prompt"][0]["role"] == "user" and seen["completion"][0]["role"] == "assistant"


def test_resume_mid_round_is_exact(tmp_path, tokenizer):
    """A checkpoint inside a generation round carries the round: the resumed run reproduces the losses."""
    overrides = dict(max_steps=4, num_iterations=2, save_strategy="steps", save_steps=1)
    dataset = Dataset.from_dict({"prompt": PROMPTS[:6]})
    full = make_trainer(tmp_path / "full", tokenizer, dataset=dataset, **overrides)
    full.train()
    losses = history(full, "loss")
    assert len(losses) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = make_trainer(tmp_path / "full", tokenizer, dataset=dataset, **overrides)
        resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "out" / "checkpoint-1"))
    resumed_losses = [e["loss"] for e in resumed.state.log_history if "loss" in e and e["step"] > 1]
    assert resumed_losses == losses[1:]


def test_dataset_smaller_than_a_generation_round_is_refused(tmp_path, tokenizer):
    # 8 completions / 4 generations = 2 prompts per micro-batch, x 3 accumulation steps = 6 prompts per round
    args = make_args(tmp_path, gradient_accumulation_steps=3)
    with pytest.raises(
        ValueError, match=r"has 5 prompts but a generation round takes 6 \(per_device_train_batch_size"
    ):
        build_trainer(DiffuGRPOTrainer, args, tokenizer, dataset=Dataset.from_dict({"prompt": PROMPTS[:5]}))
    trainer = build_trainer(DiffuGRPOTrainer, args, tokenizer, dataset=Dataset.from_dict({"prompt": PROMPTS[:6]}))
    assert trainer._generation_geometry()[0] == 6


def test_log_completions_table_has_rewards_and_advantages(tmp_path, tokenizer):
    """`log_completions`: GRPO's table (prompt, completion, rewards, advantage) of the last generation round."""
    import pandas as pd

    calls = []

    def length_reward(completions, **kwargs):
        calls.append(list(completions))
        return [len(c) / N for c in completions]

    trainer = make_trainer(tmp_path, tokenizer, reward_funcs=length_reward, log_completions=True, max_steps=1)
    trainer.train()
    table = pd.read_parquet(tmp_path / "out" / "completions" / "completions_00001.parquet")
    rewards = [len(c) / N for c in calls[-1]]
    assert table["completion"].tolist() == calls[-1] and table["length_reward"].tolist() == pytest.approx(rewards)
    expected = group_normalized_advantages(torch.tensor(rewards), 4, scale_rewards=trainer.args.scale_rewards)
    assert table["advantage"].tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert table["prompt"].tolist() == [p for p in table["prompt"][::4] for _ in range(4)]  # groups of G = 4
