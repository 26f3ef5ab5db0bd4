"""End-to-end tests of `DAMTrainer` / `DAMConfig` on a tiny LLaDA-shaped model built in code (CPU, offline)."""

from __future__ import annotations

import copy
import math
import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
import torch
from datasets import Dataset
from trainer_helpers import PROMPTS, N, build_trainer, char_tokenizer, cpu_config_kwargs, frac_a, history, tiny_model

from trl_dam.core import gather_jump_log_probs, jump_log_probs
from trl_dam.trainers import DAMConfig, DAMTrainer


@pytest.fixture(scope="module")
def tokenizer():
    return char_tokenizer()


def make_args(tmp_path, **overrides) -> DAMConfig:
    return DAMConfig(**cpu_config_kwargs(tmp_path, **{"beta": 0.05, **overrides}))


def make_trainer(tmp_path, tokenizer, reward_funcs=frac_a, dataset=None, model=None, **overrides) -> DAMTrainer:
    return build_trainer(DAMTrainer, make_args(tmp_path, **overrides), tokenizer, reward_funcs, dataset, model)


# ---------------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"beta": 0.0}, "beta"),
        ({"beta": -1.0}, "beta"),
        ({"loss_type": "kl"}, "loss_type"),
        ({"adjoint_estimator": "exact"}, "adjoint_estimator"),
        ({"num_generations": 1, "per_device_train_batch_size": 1}, "num_generations"),
        ({"per_device_train_batch_size": 6}, "per_device_train_batch_size"),
        ({"max_log_weight": 0.0}, "max_log_weight"),
        ({"inner_steps": 0}, "inner_steps"),
        ({"replay_buffer_size": 0}, "replay_buffer_size"),
        ({"sampler": "greedy"}, "sampler"),
        ({"temperature": 0.0}, "temperature"),
        ({"diffusion_steps": 7}, "diffusion_steps"),
        ({"block_length": 4}, "block_length"),
        ({"sampler": "low_confidence", "block_length": 3, "diffusion_steps": 3}, "diffusion_steps"),
        # Non-finite values used to be accepted and trained to NaN (or, for a NaN reward weight, zeroed the reward).
        ({"learning_rate": float("inf")}, "learning_rate"),
        ({"beta": float("nan")}, "beta"),
        ({"beta": 1e-40}, "beta"),  # 1 / beta overflows float32
        ({"reward_weights": [float("inf")]}, "reward_weights"),
        ({"reward_weights": [1.0, float("nan")]}, "reward_weights"),
        ({"max_grad_norm": float("nan")}, "max_grad_norm"),
    ],
)
def test_invalid_config_names_the_field(tmp_path, overrides, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        make_args(tmp_path, **overrides)


def test_config_defaults(tmp_path):
    args = DAMConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none")
    assert args.beta == 1.0 and args.loss_type == "gkl" and args.adjoint_estimator == "importance_weighted"
    assert args.max_log_weight is None and args.sampler == "ctmc" and args.tokens_per_step == 1
    assert args.gradient_checkpointing is False and args.remove_unused_columns is False
    assert args.states_per_micro_step == 1 and args.prompts_per_generation == 1 and args.buffer_capacity == 1
    assert DAMConfig.__dataclass_fields__["beta"].metadata["help"]
    analytic = make_args(tmp_path, adjoint_estimator="analytic", num_generations=1, per_device_train_batch_size=2)
    assert analytic.states_per_micro_step == 2


# ---------------------------------------------------------------------------------------------------- acceptance


@pytest.mark.parametrize("dam_target", ["first_jump", "all_positions"])
def test_reward_rises(tmp_path, tokenizer, dam_target):
    """Acceptance: the fraction of "a" in fresh samples rises clearly within 30 steps at a fixed seed.

    Measured for first_jump (seeds 0/1/2): first-5-step mean 0.046/0.071/0.058 -> last-5-step mean 0.646/0.721/0.450.
    """
    trainer = make_trainer(
        tmp_path,
        tokenizer,
        max_steps=30,
        per_device_train_batch_size=16,
        per_device_prompts_per_generation=8,
        replay_buffer_size=16,
        dam_target=dam_target,
    )
    trainer.train()
    rewards = history(trainer, "reward")
    assert len(rewards) == 30
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert first < 0.15
    assert last >= first + 0.3, (first, last)
    for key in (
        "loss",
        "reward_std",
        "rewards/frac_a/mean",
        "rewards/frac_a/std",
        "dam/ess_fraction",
        "dam/max_weight",
        "dam/kl_estimate",
        "completions/mean_length",
        "dam/rollouts_per_second",
        "dam/tokens_per_second",
        "buffer/size",
        "buffer/staleness",
        "dam/reward_calls",
    ):
        assert history(trainer, key), key
    assert "dam/clipped_fraction" not in trainer.state.log_history[0]  # clipping is off by default
    assert history(trainer, "dam/reward_calls")[0] == 16  # K reward calls per training state
    # K = 4 identical rows per state at the first rollout step: 3 of 4 rows saved, for policy and reference.
    assert history(trainer, "sampling/rows_saved")[0] == 2 * 3 * 4
    assert all(0 < v <= 1 for v in history(trainer, "dam/ess_fraction"))
    kl = history(trainer, "dam/kl_estimate")
    assert kl[0] < 1e-4 < kl[-1]  # starts at the reference (exactly), then drifts away from it


# ---------------------------------------------------------------------------------------------------- the loss


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_gradient_is_weighted_first_jump_score(tmp_path, tokenizer, temperature):
    """The trainer's loss gradient is mean_k (e^{a_k - b_k} - W_k) grad a_k, a_k = log Q_theta(Y_k | X_t), b_k the
    sampler's: mean_k (1 - W_k) grad a_k at theta = u-bar at temperature 1 only (the docstrings used to say always)."""
    trainer = make_trainer(
        tmp_path, tokenizer, per_device_train_batch_size=12, num_generations=4, temperature=temperature
    )
    rows = [{"prompt": p} for p in PROMPTS[:3]]
    trainer.model.train()
    inputs = trainer._prepare_inputs(rows)
    states, num = inputs["weights"].shape
    assert (states, num) == (3, 4)
    assert torch.allclose(
        inputs["weights"].mean(1), torch.ones(3, dtype=torch.float64), atol=1e-12
    )  # (1/K) sum_k W_k = 1

    params = [p for p in trainer.model.parameters() if p.requires_grad]
    loss = trainer.compute_loss(trainer.model, inputs)
    grads = torch.autograd.grad(loss, params)

    # Independent path: one forward per rollout (X_t repeated K times) through the core's jump_log_probs.
    x_rep = inputs["x_t"].repeat_interleave(num, 0)
    logits_fn = trainer._denoiser(trainer.model)
    a = jump_log_probs(
        logits_fn,
        x_rep,
        inputs["positions"].reshape(states * num, -1),
        inputs["tokens"].reshape(states * num, -1),
        trainer.mask_token_id,
    ).view(states, num)
    b, weights = inputs["logp_sampler"], inputs["weights"].float()
    if temperature == 1.0:
        torch.testing.assert_close(a.detach(), b, atol=1e-5, rtol=0)  # theta = u-bar
    else:
        assert float((a.detach() - b).abs().max()) > 0.05  # the tempered sampler is not the model
    surrogate = ((torch.exp(a.detach() - b) - weights) * a).mean()
    expected = torch.autograd.grad(surrogate, params, retain_graph=True)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, atol=1e-6, rtol=1e-4)
    assert max(float(g.abs().max()) for g in grads) > 1e-4  # the check is not vacuous
    naive = torch.autograd.grad(((1 - weights) * a).mean(), params)
    gap = max(float((g - n).abs().max()) for g, n in zip(grads, naive))
    assert (gap < 1e-5) if temperature == 1.0 else (gap > 1e-3), gap

    # The K first jumps read from one forward on X_t equal the K separate forwards.
    logits = trainer.adapter.logits(trainer.model, inputs["x_t"], trainer._attention_mask(inputs["x_t"]))
    shared = gather_jump_log_probs(logits, inputs["positions"], inputs["tokens"], trainer.mask_token_id)
    torch.testing.assert_close(shared, a, atol=1e-5, rtol=0)


def test_weights_closed_form(tmp_path, tokenizer):
    """W_k = K softmax_k(log rho_k + r_k / beta); clipping bounds the centred log-ratios; analytic uses r(X1)."""
    from trl_dam.core import BufferItem

    log_ratio = torch.tensor([[0.0, -1.0, 3.0, 0.2], [2.0, 2.0, 2.0, 2.0]])
    rewards = torch.tensor([[0.1, 0.2, 0.0, 0.3], [0.0, 0.0, 0.05, 0.0]])
    trainer = make_trainer(tmp_path, tokenizer)
    weights = trainer._log_weights(log_ratio, rewards, []).exp()
    torch.testing.assert_close(weights, 4 * torch.softmax(log_ratio + rewards / 0.05, dim=1))

    clipping = make_trainer(tmp_path, tokenizer, max_log_weight=1.0)
    clipped = torch.tensor([[0.0, -0.45, 1.55, 0.2], [2.0, 2.0, 2.0, 2.0]])  # centre 0.55, deviations to [-1, 1]
    torch.testing.assert_close(
        clipping._log_weights(log_ratio, rewards, []).exp(), 4 * torch.softmax(clipped + rewards / 0.05, dim=1)
    )
    assert clipping._metrics["train"]["dam/clipped_fraction"] == [0.25]  # 2 of the 8 rollouts deviate by more than c
    # With c = 1e9 nothing is clipped; the float rounding of the centring used to count as clipping (19-21%).
    loose = make_trainer(tmp_path, tokenizer, max_log_weight=1e9)
    spread = torch.randn(16, 4, generator=torch.Generator().manual_seed(0)) * 3
    torch.testing.assert_close(
        loose._log_weights(spread, rewards.repeat(8, 1), []),
        torch.log(4 * torch.softmax(spread + rewards.repeat(8, 1) / 0.05, dim=1)),
    )
    assert loose._metrics["train"]["dam/clipped_fraction"] == [0.0]

    analytic = make_trainer(tmp_path, tokenizer, adjoint_estimator="analytic")
    items = [BufferItem(torch.zeros(1), torch.zeros(1), torch.tensor([r]), 0) for r in (0.1, 0.05)]
    expected = log_ratio + (rewards - torch.tensor([[0.1], [0.05]])) / 0.05
    torch.testing.assert_close(analytic._log_weights(log_ratio, rewards, items), expected)


def _zero_then_two():
    """Reward 0 for the generation round's samples X_1, 2 for every later call (the rollouts): r_k - r(X_1) = 2."""
    calls = []

    def zero_then_two(completions, **kwargs):
        calls.append(len(completions))
        return [0.0 if len(calls) == 1 else 2.0] * len(completions)

    return zero_then_two


def test_analytic_weights_beyond_float32(tmp_path, tokenizer):
    """Rewards in {0, 2} with a small beta: analytic weights W = rho e^{2 / beta} (rho = 1 at the reference).

    log W = 87: W is a float32 number but W log W is not; the loss used to be inf, it is now the float64 value.
    log W = 100 (beta = 0.02): W itself overflowed float32, every parameter became NaN and HF logged the loss as 0.0;
    it now fails at step 0 naming the weight and the cure.
    """
    beta = 2 / 87
    trainer = make_trainer(
        tmp_path, tokenizer, reward_funcs=_zero_then_two(), adjoint_estimator="analytic", beta=beta, max_steps=1
    )
    trainer.model.train()
    inputs = trainer._prepare_inputs([{"prompt": p} for p in PROMPTS[:2]])
    torch.testing.assert_close(inputs["weights"].log(), torch.full((2, 4), 87.0, dtype=torch.float64))
    loss = trainer.compute_loss(trainer.model, inputs)
    # At theta = u-bar (a = b) every per-jump loss is 1 - W + W log W.
    w = torch.tensor(87.0, dtype=torch.float64).exp()
    torch.testing.assert_close(loss.detach(), 1 - w + w * 87, rtol=1e-6, atol=0)
    # The gradient, about W / 8 per jump, then overflows inside the network: a named error, not NaN parameters.
    trainer = make_trainer(
        tmp_path, tokenizer, reward_funcs=_zero_then_two(), adjoint_estimator="analytic", beta=beta, max_steps=1
    )
    with pytest.raises(
        FloatingPointError, match=r"Step 0: the gradient of the DAM loss is not finite \(largest weight exp\(87.0"
    ):
        trainer.train()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())

    trainer = make_trainer(
        tmp_path, tokenizer, reward_funcs=_zero_then_two(), adjoint_estimator="analytic", beta=0.02, max_steps=1
    )
    with pytest.raises(FloatingPointError, match=r"Step 0: the largest DAM weight is exp\(100.0\).*raise `beta`"):
        trainer.train()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_non_finite_loss_inputs_raise(tmp_path, tokenizer):
    trainer = make_trainer(tmp_path, tokenizer)
    trainer.model.train()
    inputs = trainer._prepare_inputs([{"prompt": p} for p in PROMPTS[:2]])
    assert torch.isfinite(trainer.compute_loss(trainer.model, inputs))
    bad = {**inputs, "weights": inputs["weights"].clone()}
    bad["weights"][1, 2] = float("nan")
    with pytest.raises(FloatingPointError, match="Step 0: 1 DAM weights are not finite"):
        trainer.compute_loss(trainer.model, bad)
    bad = {**inputs, "logp_sampler": torch.full_like(inputs["logp_sampler"], -float("inf"))}
    with pytest.raises(FloatingPointError, match="Step 0: the DAM loss is nan; the weights are finite"):
        trainer.compute_loss(trainer.model, bad)


def test_loss_options_run_and_log(tmp_path, tokenizer):
    """l2 loss, the analytic adjoint, log-weight clipping, 2 tokens per step and gradient accumulation all train."""
    trainer = make_trainer(
        tmp_path,
        tokenizer,
        loss_type="l2",
        max_log_weight=0.01,
        diffusion_steps=3,
        gradient_accumulation_steps=2,
        inner_steps=2,
        replay_buffer_size=8,
    )
    before = copy.deepcopy(trainer.model.state_dict())
    trainer.train()
    clipped = history(trainer, "dam/clipped_fraction")
    # Step 0 samples from the reference itself: every log-ratio is 0, nothing deviates from its group mean by more
    # than c (float rounding of the centring used to count as clipping); once the policy moves, some do.
    assert len(clipped) == 3 and clipped[0] == 0.0 and max(clipped) > 0, clipped
    assert all(torch.isfinite(torch.tensor(history(trainer, "loss"))))
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    # inner_steps=2: generation rounds at steps 0 and 2 only; each adds 2 (states/micro-step) x 2 (accumulation).
    assert history(trainer, "buffer/size") == [4.0, 4.0, 8.0]

    analytic = make_trainer(tmp_path, tokenizer, adjoint_estimator="analytic", num_generations=2)
    analytic.train()
    assert all(torch.isfinite(torch.tensor(history(analytic, "loss"))))


def test_low_confidence_sampler_trains(tmp_path, tokenizer):
    trainer = make_trainer(tmp_path, tokenizer, sampler="low_confidence", block_length=3, diffusion_steps=4)
    trainer.train()
    assert len(history(trainer, "loss")) == 3 and all(torch.isfinite(torch.tensor(history(trainer, "loss"))))


# ---------------------------------------------------------------------------------------------------- reference


def test_peft_reference_is_base_with_adapters_disabled(tmp_path, tokenizer):
    from peft import LoraConfig

    base = tiny_model(tokenizer)
    base_copy = copy.deepcopy(base)
    args = make_args(tmp_path, max_steps=3)
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    dataset = Dataset.from_dict({"prompt": PROMPTS})
    trainer = DAMTrainer(
        base, frac_a, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )
    assert trainer.ref_model is None  # no second copy of the weights
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    adapters = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert adapters and all("lora_" in n for n in adapters)
    trainer.train()

    for name, param in trainer.model.named_parameters():
        if name in frozen:
            assert torch.equal(param, frozen[name]), name
    assert any(not torch.equal(p, adapters[n]) for n, p in trainer.model.named_parameters() if n in adapters)

    x = trainer._canvas(trainer._tokenize_prompts(PROMPTS[:4]))
    reference = trainer._reference_denoiser(trainer.model)(x)
    torch.testing.assert_close(reference, trainer.adapter.logits(base_copy, x, trainer._attention_mask(x)))
    policy = trainer._denoiser(trainer.model)(x)
    assert not torch.allclose(policy, reference)  # the adapters did learn something


def test_peft_model_passed_in_is_the_reference(tmp_path, tokenizer):
    """A PeftModel passed in (an SFT LoRA to continue from) is p_base: its adapter is frozen as TRL's "ref" adapter,
    so the reference logits are the passed-in model's, not the bare base's, while the "default" adapter trains."""
    from peft import LoraConfig, get_peft_model

    base = tiny_model(tokenizer)
    bare = copy.deepcopy(base)
    sft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a trained SFT adapter: LoRA's B is not zero
        for name, param in sft.named_parameters():
            if "lora_B" in name:
                param.copy_(0.5 * torch.randn(param.shape, generator=generator))
    passed_in = copy.deepcopy(sft).eval()
    trainer = make_trainer(tmp_path, tokenizer, model=sft)
    assert trainer.ref_model is None and set(trainer.model.peft_config) == {"default", "ref"}
    ref_params = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if ".ref." in n}
    assert ref_params and not any(p.requires_grad for n, p in trainer.model.named_parameters() if ".ref." in n)
    default_before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if ".default." in n}

    x = trainer._canvas(trainer._tokenize_prompts(PROMPTS[:4]))
    mask = trainer._attention_mask(x)
    with torch.no_grad():
        expected = trainer.adapter.logits(passed_in, x, mask)
        bare_logits = trainer.adapter.logits(bare, x, mask)
        torch.testing.assert_close(trainer._reference_denoiser(trainer.model)(x), expected)
    assert (expected - bare_logits).abs().max() > 1e-2  # the adapter matters: the old reference was wrong

    trainer.train()
    params = dict(trainer.model.named_parameters())
    assert all(torch.equal(params[n], p) for n, p in ref_params.items())
    assert any(not torch.equal(params[n], p) for n, p in default_before.items())  # the SFT adapter trains on
    with torch.no_grad():
        torch.testing.assert_close(trainer._reference_denoiser(trainer.model)(x), expected)
        assert not torch.allclose(trainer._denoiser(trainer.model)(x), expected)
    assert trainer.model.active_adapter == "default"


def test_qlora_trains_a_4bit_model(tmp_path, tokenizer):
    """QLoRA through the API: `quantization_config` loads 4-bit weights, LoRA trains in bf16 (TRL's adapter dtype for
    quantized models), the quantized base stays fixed and is the reference (adapters disabled)."""
    bnb = pytest.importorskip(
        "bitsandbytes",
        reason="bitsandbytes is not installed (the config plumbing is tested with a mock in test_scripts_dam.py)",
    )
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig

    from trl_dam.models import load_diffusion_lm

    path = tmp_path / "tiny"
    tiny_model(tokenizer).save_pretrained(path)
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32)
    try:
        quantized = load_diffusion_lm(path, quantization_config=quantization, device_map={"": "cpu"})
    except Exception as err:  # e.g. a bitsandbytes build without a CPU backend
        pytest.skip(f"bitsandbytes {bnb.__version__} cannot quantize on this machine: {type(err).__name__}: {err}")
    args = make_args(tmp_path, max_steps=2)
    dataset = Dataset.from_dict({"prompt": PROMPTS})
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    trainer = DAMTrainer(
        str(path),
        frac_a,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        quantization_config=quantization,
    )
    assert trainer.model.is_loaded_in_4bit
    assert type(trainer.model.get_base_model().model.transformer.blocks[0].q_proj.base_layer).__name__ == "Linear4bit"
    lora = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert lora and all(p.dtype == torch.bfloat16 for p in lora.values())
    trainer.train()
    assert all(torch.isfinite(torch.tensor(history(trainer, "loss"))))
    assert any(not torch.equal(p, lora[n]) for n, p in trainer.model.named_parameters() if n in lora)
    x = trainer._canvas(trainer._tokenize_prompts(PROMPTS[:4]))
    with torch.no_grad():
        expected = trainer.adapter.logits(quantized, x, trainer._attention_mask(x))
        torch.testing.assert_close(trainer._reference_denoiser(trainer.model)(x), expected)


def test_frozen_reference_copy_is_not_synced(tmp_path, tokenizer):
    base = tiny_model(tokenizer)
    base_copy = copy.deepcopy(base)
    trainer = make_trainer(tmp_path, tokenizer, model=base, gradient_checkpointing=True)
    assert trainer.args.gradient_checkpointing is False  # TinyLLaDA (like LLaDA) has no checkpointing support
    trainer.train()
    for (name, ref), orig in zip(trainer.ref_model.named_parameters(), base_copy.parameters()):
        assert torch.equal(ref, orig), name
        assert not ref.requires_grad
    assert any(not torch.equal(p, q) for p, q in zip(trainer.model.parameters(), base_copy.parameters()))


# ---------------------------------------------------------------------------------------------------- data and rewards


def test_conversational_prompts_use_chat_template(tmp_path, tokenizer):
    seen = {}

    def reward(prompts, completions, completion_ids, **kwargs):
        seen["prompt"], seen["completion"] = prompts[0], completions[0]
        return frac_a(completions)

    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in PROMPTS]})
    trainer = make_trainer(tmp_path, tokenizer, reward_funcs=reward, dataset=dataset, max_steps=2)
    ids = trainer._tokenize_prompts([[{"role": "user", "content": "ab"}]])[0]
    assert tokenizer.decode(ids) == "<bos><|user|>ab<|end|><|assistant|>"
    trainer.train()
    assert seen["prompt"][0]["role"] == "user"
    assert isinstance(seen["completion"], list) and seen["completion"][0]["role"] == "assistant"


def test_reward_kwargs_weights_and_none(tmp_path, tokenizer):
    calls = []

    def uses_column(prompts, completions, target, trainer_state, log_metric, **kwargs):
        assert len(target) == len(prompts) and all(t == "a" for t in target)
        log_metric("custom/metric", 1.0)
        calls.append(len(prompts))
        return [c.count(t) / N for c, t in zip(completions, target)]

    def sometimes_none(completions, **kwargs):
        return [None if i % 2 else 1.0 for i in range(len(completions))]

    dataset = Dataset.from_dict({"prompt": PROMPTS, "target": ["a"] * len(PROMPTS)})
    trainer = make_trainer(
        tmp_path, tokenizer, reward_funcs=[uses_column, sometimes_none], dataset=dataset, reward_weights=[2.0, 0.5]
    )
    trainer.train()
    # Per step: 2 fresh samples (generation round) then 2 states x K=4 rollouts.
    assert calls[:2] == [2, 8]
    assert history(trainer, "custom/metric")[0] == 1.0
    assert history(trainer, "rewards/sometimes_none/mean") == [1.0] * 3  # None is skipped, not counted as 0
    # Total = 2 * uses_column + 0.5 * sometimes_none (where given).
    rewards_per_func = torch.tensor([[0.5, 1.0], [0.0, float("nan")]])
    torch.testing.assert_close(trainer._weighted_total(rewards_per_func), torch.tensor([1.5, 0.0]))


def _raises(completions, **kwargs):
    return 1 / 0


def _nan(completions, **kwargs):
    return [float("nan")] * len(completions)


def _huge(completions, **kwargs):
    return [1e39] * len(completions)  # a finite Python float, inf in float32


def _too_few(completions, **kwargs):
    return [1.0]


def _abstains(completions, **kwargs):
    return [None] * len(completions)


@pytest.mark.parametrize(
    ("reward_funcs", "error", "match"),
    [
        ([frac_a, _raises], RuntimeError, "Reward function '_raises' raised ZeroDivisionError"),
        ([frac_a, _nan], ValueError, "Reward function '_nan' returned nan for completion 0"),
        ([frac_a, _too_few], ValueError, "'_too_few' returned 1 rewards for 2 completions"),
        ([_abstains], ValueError, r"Every reward function \(_abstains\) returned None for completion 0"),
        ([frac_a, _huge], ValueError, "Step 0: reward function '_huge' returned a value beyond float32's range"),
    ],
)
def test_bad_rewards_raise_clearly_and_keep_the_buffer(tmp_path, tokenizer, reward_funcs, error, match):
    trainer = make_trainer(tmp_path, tokenizer, reward_funcs=reward_funcs)
    trainer.model.train()
    with pytest.raises(error, match=match):
        trainer._prepare_inputs([{"prompt": p} for p in PROMPTS[:2]])
    assert len(trainer.replay_buffer) == 0  # nothing half-scored was stored


def test_reward_signature_checked_at_init(tmp_path, tokenizer):
    def needs_solution(completions, solution, **kwargs):
        return [0.0] * len(completions)

    def no_kwargs(prompts, completions):
        return [0.0] * len(completions)

    with pytest.raises(ValueError, match="requires \\['solution'\\]"):
        make_trainer(tmp_path, tokenizer, reward_funcs=needs_solution)
    with pytest.raises(ValueError, match="'no_kwargs' must accept \\*\\*kwargs"):
        make_trainer(tmp_path, tokenizer, reward_funcs=no_kwargs)


def test_reward_model_and_model_path(tmp_path, tokenizer):
    """A sequence-classification reward model, and the policy given as a local path."""
    from transformers import BertConfig, BertForSequenceClassification

    reward_model = BertForSequenceClassification(
        BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            num_labels=1,
            pad_token_id=tokenizer.pad_token_id,
        )
    ).train()
    path = tmp_path / "tiny"
    tiny_model(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    args = make_args(tmp_path, max_steps=1)
    dataset = Dataset.from_dict({"prompt": PROMPTS})
    trainer = DAMTrainer(
        str(path),
        [frac_a, reward_model],
        args=args,
        train_dataset=dataset,
        reward_processing_classes=[None, tokenizer],
    )
    assert trainer.reward_func_names == ["frac_a", "BertForSequenceClassification"]  # in-memory: the class name
    # Built in code it starts in training mode; scoring it with dropout on would make rewards random.
    assert not reward_model.training and not any(p.requires_grad for p in reward_model.parameters())
    trainer.train()
    assert history(trainer, f"rewards/{trainer.reward_func_names[1]}/mean")


def test_evaluate_logs_rewards_and_loss(tmp_path, tokenizer):
    trainer = make_trainer(tmp_path, tokenizer, per_device_eval_batch_size=2)
    metrics = trainer.evaluate(eval_dataset=Dataset.from_dict({"prompt": PROMPTS[:4]}))
    for key in ("eval_loss", "eval_reward", "eval_dam/ess_fraction", "eval_rewards/frac_a/mean"):
        assert key in metrics, key
    assert len(trainer.replay_buffer) == 0


# ---------------------------------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("fold_generation", [False, True])
def test_resume_from_checkpoint_is_exact(tmp_path, tokenizer, fold_generation):
    """Stop at a checkpoint, resume, and get the uninterrupted run's next losses (buffer and RNG restored), also with
    the generation rounds folded into the rollouts (the round of step 4 is, after the resume)."""
    overrides = dict(
        max_steps=6,
        inner_steps=2,
        replay_buffer_size=6,
        per_device_prompts_per_generation=3,
        save_strategy="steps",
        save_steps=3,
        fold_generation=fold_generation,
    )
    dataset = Dataset.from_dict({"prompt": PROMPTS[:5]})  # short epochs: the resume crosses an epoch boundary
    full = make_trainer(tmp_path / "full", tokenizer, dataset=dataset, **overrides)
    full.train()
    losses = history(full, "loss")
    assert len(losses) == 6

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = make_trainer(tmp_path / "full", tokenizer, dataset=dataset, **overrides)
        resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "out" / "checkpoint-3"))
    resumed_losses = [e["loss"] for e in resumed.state.log_history if "loss" in e and e["step"] > 3]
    assert resumed_losses == losses[3:]
    assert [item.completion_ids.tolist() for item in resumed.replay_buffer.items] == [
        item.completion_ids.tolist() for item in full.replay_buffer.items
    ]


def test_iterable_dataset_is_refused_with_the_reason(tmp_path, tokenizer):
    streamed = Dataset.from_dict({"prompt": PROMPTS}).to_iterable_dataset()
    with pytest.raises(NotImplementedError, match=r"map-style .*IterableDataset.*by index.*Dataset.from_list"):
        make_trainer(tmp_path, tokenizer, dataset=streamed)
    # The suggested fix works: the materialised stream trains.
    materialised = Dataset.from_list(list(streamed.take(len(PROMPTS))))
    trainer = make_trainer(tmp_path, tokenizer, dataset=materialised, max_steps=1)
    trainer.train()
    assert history(trainer, "reward")


def test_dataset_smaller_than_a_generation_round_is_refused(tmp_path, tokenizer):
    args = make_args(tmp_path, per_device_prompts_per_generation=5)
    with pytest.raises(
        ValueError, match=r"has 4 prompts but a generation round takes 5 \(`per_device_prompts_per_gen"
    ):
        build_trainer(DAMTrainer, args, tokenizer, dataset=Dataset.from_dict({"prompt": PROMPTS[:4]}))
    trainer = build_trainer(DAMTrainer, args, tokenizer, dataset=Dataset.from_dict({"prompt": PROMPTS[:5]}))
    assert trainer._generation_geometry()[0] == 5


# ---------------------------------------------------------------------------------------------------- logging


def test_log_completions_table_holds_the_rollouts(tmp_path, tokenizer, capsys):
    """`log_completions`: the table printed and saved at a logging step holds the last micro-step's K rollouts per
    state: the completions the reward saw, their rewards, their weights W_k and the state X_t they started from."""
    import pandas as pd

    calls = []

    def length_reward(completions, log_extra, **kwargs):
        calls.append(list(completions))
        log_extra("length", [len(c) for c in completions])
        return [len(c) / N for c in completions]

    trainer = make_trainer(
        tmp_path, tokenizer, reward_funcs=length_reward, log_completions=True, num_completions_to_print=3, max_steps=1
    )
    returned = []
    dam_inputs = trainer._dam_inputs
    trainer._dam_inputs = lambda items: returned.append(dam_inputs(items)) or returned[-1]
    trainer.train()

    table = pd.read_parquet(tmp_path / "out" / "completions" / "completions_00001.parquet")
    rollouts = calls[-1]  # the generation round's call comes first, the rollouts' last
    assert len(table) == 8 and table["completion"].tolist() == rollouts
    assert table["length_reward"].tolist() == pytest.approx([len(c) / N for c in rollouts])
    assert table["length"].tolist() == [len(c) for c in rollouts]
    assert table["step"].tolist() == [1] * 8
    weights = returned[-1]["weights"]
    assert table["weight"].tolist() == pytest.approx(weights.reshape(-1).tolist())
    assert table["weight"].std() > 0.1  # the rewards differ, so do the weights
    assert table["weight"].to_numpy().reshape(2, 4).mean(1) == pytest.approx([1.0, 1.0])  # (1/K) sum_k W_k = 1
    states = tokenizer.batch_decode(returned[-1]["x_t"][:, -N:], skip_special_tokens=False)
    assert table["state"].tolist() == [state for state in states for _ in range(4)]
    assert history(trainer, "dam/rollout_reward")[0] == pytest.approx(table["length_reward"].mean())

    printed = capsys.readouterr().out
    assert "Step 1" in printed and "length_reward" in printed and "weight" in printed


def _is_a(completions, **kwargs):
    return [1.0 if c == "a" else 0.0 for c in completions]


def test_target_reward_on_a_one_token_problem_is_the_reward_under_p_star(tmp_path, tokenizer):
    """N = 1, one prompt: every state is the fully masked canvas and, at the first step (policy = base, rho = 1),
    (1/K) sum_k W_k r_k estimates E_{p*}[r] = p_a e^{1/beta} / (p_a e^{1/beta} + 1 - p_a), with p_a the base's
    probability of "a". `dam/rollout_reward` estimates p_a itself."""
    from trl_dam.core import token_log_probs

    dataset = Dataset.from_dict({"prompt": ["abc"] * 12})
    one_token = dict(max_completion_length=1, num_generations=256, per_device_train_batch_size=512, max_steps=1)
    probe = make_trainer(tmp_path, tokenizer, reward_funcs=_is_a, dataset=dataset, **one_token)
    x = probe._canvas(probe._tokenize_prompts(["abc"]))
    with torch.no_grad():
        logp = token_log_probs(probe._denoiser(probe.model)(x)[0, -1], probe.mask_token_id)
    p_a = float(logp[tokenizer.convert_tokens_to_ids("a")].exp())
    beta = 1 / math.log((1 - p_a) / p_a)  # makes E_{p*}[r] = 1/2 exactly
    expected = p_a * math.exp(1 / beta) / (p_a * math.exp(1 / beta) + 1 - p_a)
    assert expected == pytest.approx(0.5) and p_a < 0.2

    trainer = make_trainer(tmp_path, tokenizer, reward_funcs=_is_a, dataset=dataset, beta=beta, **one_token)
    trainer.train()
    # 512 rollouts: the self-normalised estimate's standard error is about 0.03 here.
    assert history(trainer, "dam/target_reward")[0] == pytest.approx(expected, abs=0.1)
    assert history(trainer, "dam/rollout_reward")[0] == pytest.approx(p_a, abs=0.06)


def _length_reward(completions, **kwargs):
    return [len(c) / N for c in completions]


@pytest.mark.parametrize(("beta", "warns"), [(100.0, True), (0.05, False)])
def test_warns_once_when_beta_leaves_p_star_at_the_base(tmp_path, tokenizer, caplog, beta, warns):
    trainer = make_trainer(tmp_path, tokenizer, reward_funcs=_length_reward, beta=beta)
    with caplog.at_level("WARNING", logger="trl_dam.trainers.dam_trainer"):
        trainer.train()
    messages = [r.getMessage() for r in caplog.records if "is large for this reward" in r.getMessage()]
    assert len(messages) == (1 if warns else 0)
    kl = history(trainer, "dam/target_kl_first_round")
    assert len(kl) == 1 and (kl[0] < 0.01) == warns
    if warns:
        assert "temperature on the reward, not GRPO's KL coefficient" in messages[0]
