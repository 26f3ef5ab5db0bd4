"""The output projection at requested positions only (`trl_dam.models.head_positions`): the restricted logits are the
full logits at those positions, for every model family, padded or not, under LoRA, through the samplers and a DAM
step; models whose head cannot be restricted fall back to the full logits, gathered, and say so."""

from __future__ import annotations

import logging

import pytest
import torch
from legacy_remote_code import legacy_remote_code_fixture, write_legacy_checkpoint  # noqa: F401
from model_helpers import MASK, X, lora_with_random_b
from torch import nn

from trl_dam.core import logits_at, sample_ctmc, sample_low_confidence
from trl_dam.core.shared_rows import GroupedRowsDenoiser
from trl_dam.models import (
    TINY_KINDS,
    DiffusionLMAdapter,
    build_tiny_masked_lm,
    head_positions,
    load_diffusion_lm,
    resolve_adapter,
)
from trl_dam.models.head_positions import output_head

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

#: Per row: the last position, position 0 (Dream keeps its own logits there), a repeated position, and in the second
#: row (left-padded by two) a pad position.
POSITIONS = torch.tensor([[9, 0, 6, 6], [7, 1, 8, 2]])
ROWS = torch.arange(2).unsqueeze(1)


def _head_rows(model) -> tuple[list[tuple[int, ...]], object]:
    """Record the shape of every output of `model`'s head (the hook handle is returned to remove it)."""
    shapes: list[tuple[int, ...]] = []
    handle = output_head(model).register_forward_hook(lambda module, args, out: shapes.append(tuple(out.shape[:-1])))
    return shapes, handle


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("kind", TINY_KINDS)
def test_restricted_head_gives_the_full_logits_at_the_positions(tokenizer, kind, padded):
    model = build_tiny_masked_lm(tokenizer, kind)
    adapter = resolve_adapter(model, tokenizer)
    mask = MASK if padded else None
    shapes, handle = _head_rows(model)
    with torch.no_grad():
        full = adapter.logits(model, X, mask)
        restricted = adapter.logits(model, X, mask, positions=POSITIONS)
    handle.remove()
    # The head ran on the 2 x 4 requested hidden states, not on all 2 x 10.
    assert shapes == [(2, 10), (2, 4)]
    assert restricted.shape == (2, 4, full.shape[-1])
    torch.testing.assert_close(restricted, full[ROWS, POSITIONS], rtol=0, atol=1e-6)
    assert (restricted[0, 0] - restricted[0, 1]).abs().max() > 1e-3  # different positions, different logits
    if kind == "dream":  # aligned position i reads the raw logits at i - 1; position 0 its own
        with torch.no_grad():
            raw = model(**adapter.forward_kwargs(X, mask)).logits
        torch.testing.assert_close(restricted[0, :3], raw[0, [8, 0, 5]], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "kind, targets",
    # LLaDA's "ff_out" names both the MLP down-projection and the LM head: the hooked head is then a LoRA layer.
    [("llada", ["q_proj", "v_proj", "ff_out"]), ("dream", ["q_proj", "v_proj"])],
)
def test_restricted_head_under_lora_policy_and_reference(tokenizer, kind, targets):
    base = build_tiny_masked_lm(tokenizer, kind)
    adapter = resolve_adapter(base, tokenizer)
    with torch.no_grad():
        base_full = adapter.logits(base, X, MASK)
    peft_model = lora_with_random_b(base, targets)
    policy = adapter.bind_left_padded(peft_model, tokenizer.pad_token_id)
    reference = adapter.bind_left_padded(peft_model, tokenizer.pad_token_id, disable_adapter=True)
    shapes, handle = _head_rows(peft_model)
    with torch.no_grad():
        policy_at, reference_at = policy(X, positions=POSITIONS), reference(X, positions=POSITIONS)
        policy_full = policy(X)
    handle.remove()
    assert shapes[:2] == [(2, 4), (2, 4)]
    torch.testing.assert_close(policy_at, policy_full[ROWS, POSITIONS], rtol=0, atol=1e-6)
    torch.testing.assert_close(reference_at, base_full[ROWS, POSITIONS], rtol=0, atol=1e-6)
    assert (policy_at - reference_at).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_restricted_head_on_legacy_remote_code(tokenizer, tmp_path, legacy_remote_code, kind):
    """The checkpoints written in LLaDA's and Dream's hub-code style restrict their head too."""
    folder = tmp_path / kind
    expected_model = write_legacy_checkpoint(folder, kind, tokenizer, seed=5)
    model = load_diffusion_lm(folder, trust_remote_code=True).eval()
    adapter = resolve_adapter(model, tokenizer)
    shapes, handle = _head_rows(model)
    with torch.no_grad():
        restricted = adapter.logits(model, X, MASK, positions=POSITIONS)
        expected = adapter.logits(expected_model, X, MASK)[ROWS, POSITIONS]
    handle.remove()
    assert shapes == [(2, 4)]
    torch.testing.assert_close(restricted, expected, rtol=0, atol=1e-6)


class _OddHeadLM(nn.Module):
    """A denoiser whose forward gets in the way of the restriction in one of several ways (``mode``)."""

    def __init__(self, mode: str, vocab: int = 11, hidden: int = 8):
        super().__init__()
        self.mode = mode
        self.embed = nn.Embedding(vocab, hidden)
        self.mix = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, vocab)

    def get_input_embeddings(self):
        return self.embed

    def get_output_embeddings(self):
        return {"tied": self.embed, "no_head": None}.get(self.mode, self.head)

    def forward(self, input_ids, attention_mask=None):
        h = torch.tanh(self.mix(self.embed(input_ids)) + self.mix(self.embed(input_ids)).mean(1, keepdim=True))
        batch, length, hidden = h.shape
        if self.mode == "tied":
            return (h @ self.embed.weight.T,)
        if self.mode == "flat":  # the head on [B * L, H]: left alone
            return (self.head(h.reshape(batch * length, hidden)).view(batch, length, -1),)
        logits = self.head(h)
        if self.mode == "reshape":  # fails on the restricted logits
            return (logits.view(batch, length, -1),)
        if self.mode == "twice":  # a second head call (an auxiliary output) after the restricted one
            return (logits, self.head(2 * h))
        return (logits,)


@pytest.mark.parametrize("mode", ["plain", "no_head", "tied", "flat", "reshape", "twice", "custom_align"])
def test_unrestrictable_heads_fall_back_to_the_full_logits(caplog, monkeypatch, mode):
    monkeypatch.setattr(head_positions, "_LOGGED", set())
    torch.manual_seed(0)
    model = _OddHeadLM(mode).eval()
    adapter = DiffusionLMAdapter(mask_token_id=10)
    if mode == "custom_align":  # an adapter that shifts its logits and does not say how positions map

        class ReversedAdapter(DiffusionLMAdapter):
            def align_logits(self, logits):
                return logits.flip(1)

        adapter = ReversedAdapter(mask_token_id=10)
    x = torch.randint(0, 10, (2, 10), generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), caplog.at_level(logging.INFO, logger="trl_dam.models.head_positions"):
        restricted = adapter.logits(model, x, positions=POSITIONS)
        full = adapter.logits(model, x)
    torch.testing.assert_close(restricted, full[ROWS, POSITIONS], rtol=0, atol=1e-6)
    assert ("every position" in caplog.text) == (mode != "plain"), caplog.text
    caplog.clear()
    with torch.no_grad(), caplog.at_level(logging.INFO, logger="trl_dam.models.head_positions"):
        adapter.logits(model, x, positions=POSITIONS)
    assert "every position" not in caplog.text  # once per model class and reason


def test_positions_are_validated(tokenizer):
    model = build_tiny_masked_lm(tokenizer, "llada")
    adapter = resolve_adapter(model, tokenizer)
    with pytest.raises(ValueError, match=r"positions must lie in \[0, 10\)"):
        adapter.logits(model, X, positions=POSITIONS + 3)
    with pytest.raises(ValueError, match="integer tensor"):
        adapter.logits(model, X, positions=POSITIONS[0])


def _canvas(tokenizer, k):
    """Two prompts, the second left-padded, then 6 masks; each row repeated ``k`` times (DAM's rollout batch)."""
    x = X.clone()
    x[:, 4:] = tokenizer.mask_token_id
    return x.repeat_interleave(k, 0)


@pytest.mark.parametrize("tokens_per_step", [1, 2])
def test_ctmc_rollouts_with_the_restricted_head_follow_the_same_path(tokenizer, tokens_per_step):
    """DAM's rollout call (K copies per state, policy and reference, the first step shared) samples the same tokens
    with the same log-probs whether the denoisers compute their head at the revealed positions or everywhere."""
    k = 3
    policy_model = build_tiny_masked_lm(tokenizer, "llada", seed=0)
    adapter = resolve_adapter(policy_model, tokenizer)
    policy = adapter.bind_left_padded(policy_model, tokenizer.pad_token_id)
    reference = adapter.bind_left_padded(build_tiny_masked_lm(tokenizer, "llada", seed=1), tokenizer.pad_token_id)
    x = _canvas(tokenizer, k)
    shapes, handle = _head_rows(policy_model)
    runs = []
    for fns in [(policy, reference), (lambda x: policy(x), lambda x: reference(x))]:  # plain callables: full logits
        runs.append(
            sample_ctmc(
                GroupedRowsDenoiser(fns[0], k),
                x,
                adapter.mask_token_id,
                tokens_per_step=tokens_per_step,
                temperature=0.9,
                reference_logits_fn=GroupedRowsDenoiser(fns[1], k),
                generator=torch.Generator().manual_seed(3),
            )
        )
        shapes.append("run")
    handle.remove()
    restricted, full = runs
    assert torch.equal(restricted.final, full.final) and torch.equal(restricted.tokens, full.tokens)
    torch.testing.assert_close(restricted.logp_policy, full.logp_policy, rtol=0, atol=1e-5)
    torch.testing.assert_close(restricted.logp_reference, full.logp_reference, rtol=0, atol=1e-5)
    assert (restricted.logp_policy - restricted.logp_reference).abs().max() > 1e-3
    # Restricted run: the shared first step projects one row per state at its K * k positions, then k per row.
    calls = shapes[: shapes.index("run")]
    assert calls[0] == (2, k * tokens_per_step)
    assert all(s[1] == tokens_per_step for s in calls[1:]) and all(s[1] == 10 for s in shapes[len(calls) + 1 : -1])


def test_low_confidence_sampler_asks_for_the_block_only(tokenizer):
    model = build_tiny_masked_lm(tokenizer, "dream")
    adapter = resolve_adapter(model, tokenizer)
    denoiser = adapter.bind_left_padded(model, tokenizer.pad_token_id)
    x = _canvas(tokenizer, 1)
    shapes, handle = _head_rows(model)
    runs = [
        sample_low_confidence(
            fn, x, adapter.mask_token_id, steps=4, block_length=3, generator=torch.Generator().manual_seed(0)
        )
        for fn in (denoiser, lambda x: denoiser(x))
    ]
    handle.remove()
    assert shapes[:4] == [(2, 3)] * 4 and shapes[4:] == [(2, 10)] * 4
    assert torch.equal(runs[0].final, runs[1].final)
    torch.testing.assert_close(runs[0].logp_policy, runs[1].logp_policy, rtol=0, atol=1e-5)


def test_logits_at_gathers_for_plain_callables():
    table = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0))
    got = logits_at(lambda x: table + x[..., None], torch.ones(2, 5, dtype=torch.long), torch.tensor([[4, 0], [2, 2]]))
    torch.testing.assert_close(got, torch.stack([table[0, [4, 0]], table[1, [2, 2]]]) + 1)


@pytest.mark.parametrize("dam_target", ["first_jump", "all_jumps", "all_positions"])
def test_dam_step_is_the_same_with_the_restricted_head(tmp_path, monkeypatch, dam_target):
    """A DAM step (generation round, rollouts with reference, loss, update) gives the same loss and parameters with
    the head restricted (the default: the samplers and the first-jump / all-jumps gradient forward ask for positions)
    and with it computed everywhere (no `source_positions`: every request falls back to full logits, gathered)."""
    from trainer_helpers import N, build_trainer, char_tokenizer, cpu_config_kwargs, history, tiny_model

    from trl_dam.trainers import DAMConfig, DAMTrainer

    tokenizer = char_tokenizer()
    results = []
    for restricted in (True, False):
        if not restricted:
            monkeypatch.setattr(DiffusionLMAdapter, "source_positions", lambda self, positions: None)
        args = DAMConfig(
            **cpu_config_kwargs(tmp_path / str(restricted), max_steps=2), beta=0.1, dam_target=dam_target, optim="sgd"
        )
        model = tiny_model(tokenizer)
        shapes, handle = _head_rows(model)
        trainer = build_trainer(DAMTrainer, args, tokenizer, model=model)
        trainer.train()
        handle.remove()
        # Restricted, sampling calls project at most N positions per row (one per call, or the K of a shared first
        # step); so does the gradient forward except for all_positions. Unrestricted, every call projects the whole
        # canvas (> N positions).
        assert any(s[1] <= N for s in shapes) == restricted
        if restricted:
            loss_forwards = [s for s in shapes if s[1] > N]
            assert bool(loss_forwards) == (dam_target == "all_positions")
        results.append((history(trainer, "loss"), [p.detach().clone() for p in trainer.model.parameters()]))
    (loss_on, params_on), (loss_off, params_off) = results
    assert len(loss_on) == 2 and loss_on == pytest.approx(loss_off, rel=1e-5, abs=1e-7)
    assert any(abs(v) > 1e-6 for v in loss_on)
    for on, off in zip(params_on, params_off, strict=True):
        # SGD: parameter differences are the lr times the gradients' (Adam would blow up the rounding of near-zero ones).
        torch.testing.assert_close(on, off, rtol=1e-5, atol=1e-6)
