"""Adapters: kind detection, mask-id resolution, Dream's shift, bidirectionality, padding and `bind`."""

from types import SimpleNamespace

import pytest
import torch
from model_helpers import MASK, X
from torch import nn
from transformers import Gemma2Config

from trl_dam.models import (
    LLADA_DEFAULT_MASK_TOKEN_ID,
    TINY_KINDS,
    BidirectionalLMAdapter,
    DiffusionLMAdapter,
    DreamAdapter,
    LLaDAAdapter,
    TinyLLaDAConfig,
    bind_denoiser,
    build_tiny_masked_lm,
    detect_model_kind,
    resolve_adapter,
    resolve_mask_token_id,
)
from trl_dam.models.adapters import ensure_bidirectional_padding_mask

EXPECTED = {
    "bert": (DiffusionLMAdapter, "masked_lm"),
    "modernbert": (DiffusionLMAdapter, "masked_lm"),
    "gemma": (BidirectionalLMAdapter, "bidirectional_lm"),
    "llada": (LLaDAAdapter, "llada"),
    "dream": (DreamAdapter, "dream"),
}

# row 0 unpadded, row 1 left-padded by two; 4 is <mask>


@pytest.fixture(scope="module")
def models(tokenizer):
    return {kind: build_tiny_masked_lm(tokenizer, kind) for kind in TINY_KINDS}


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_resolve_adapter_kind(models, tokenizer, kind):
    adapter = resolve_adapter(models[kind], tokenizer)
    cls, name = EXPECTED[kind]
    assert type(adapter) is cls
    assert adapter.name == name == detect_model_kind(models[kind]) == detect_model_kind(models[kind].config)
    assert adapter.mask_token_id == tokenizer.mask_token_id == 4
    # wrappers are looked through
    assert resolve_adapter(nn.DataParallel(models[kind]), tokenizer) == adapter


def test_mask_token_id_resolution_order(models, tokenizer):
    llada, bert = models["llada"], models["bert"]
    assert llada.config.mask_token_id == 4
    # explicit argument > config > processing class
    assert resolve_adapter(llada, tokenizer, mask_token_id=9).mask_token_id == 9
    llada.config.mask_token_id = 7
    try:
        assert resolve_adapter(llada, tokenizer).mask_token_id == 7
        llada.config.mask_token_id = None
        assert resolve_adapter(llada, tokenizer).mask_token_id == 4
        # a processor exposing `.tokenizer` works too
        assert resolve_adapter(llada, SimpleNamespace(tokenizer=tokenizer)).mask_token_id == 4
        # LLaDA's default is the last resort ... and is out of range for a tiny vocabulary
        assert resolve_mask_token_id(llada.config, None, None, kind="llada") == LLADA_DEFAULT_MASK_TOKEN_ID == 126336
        with pytest.raises(ValueError, match="out of range .* emits 34 logits"):
            resolve_adapter(llada)
    finally:
        llada.config.mask_token_id = 4
    big = TinyLLaDAConfig(vocab_size=126464)
    assert resolve_mask_token_id(big, None, None, kind="llada") == 126336

    # no source at all: a clear error naming everything that was tried
    with pytest.raises(ValueError) as info:
        resolve_adapter(bert)
    message = str(info.value)
    for tried in ("mask_token_id argument", "model.config.mask_token_id", "no processing_class given"):
        assert tried in message
    assert "LLaDA default" not in message
    tokenizer_without_mask = SimpleNamespace(mask_token_id=None)
    with pytest.raises(ValueError, match="SimpleNamespace.mask_token_id"):
        resolve_adapter(bert, tokenizer_without_mask)
    for bad in (-1, True, 2.0):
        with pytest.raises(ValueError, match="non-negative int"):
            resolve_adapter(bert, tokenizer, mask_token_id=bad)


def test_unsupported_models_and_kind_override(tokenizer, models):
    causal = build_tiny_masked_lm(tokenizer, "gemma", use_bidirectional_attention=False)
    with pytest.raises(ValueError, match="use_bidirectional_attention=True"):
        resolve_adapter(causal, tokenizer)
    with pytest.raises(ValueError, match="Unknown adapter kind"):
        resolve_adapter(models["llada"], tokenizer, kind="mdlm")
    forced = resolve_adapter(models["llada"], tokenizer, kind="dream")
    assert type(forced) is DreamAdapter


def test_dream_logits_are_shifted_right_by_one(models, tokenizer):
    model = models["dream"]
    adapter = resolve_adapter(model, tokenizer)
    x = X[:1]
    with torch.no_grad():
        raw = model(input_ids=x).logits
        aligned = adapter.logits(model, x)
    assert aligned.shape == raw.shape
    torch.testing.assert_close(aligned[:, 1:], raw[:, :-1], rtol=0, atol=0)
    torch.testing.assert_close(aligned[:, 0], raw[:, 0], rtol=0, atol=0)
    assert not torch.allclose(aligned[:, 1:], raw[:, 1:])
    # the other families are not shifted
    for kind in ("llada", "bert"):
        with torch.no_grad():
            torch.testing.assert_close(
                resolve_adapter(models[kind], tokenizer).logits(models[kind], x), models[kind](input_ids=x).logits
            )


@pytest.mark.parametrize("kind", TINY_KINDS)
@pytest.mark.parametrize("padded", [False, True])
def test_bidirectional_last_token_changes_first_position(models, tokenizer, kind, padded):
    model = models[kind]
    adapter = resolve_adapter(model, tokenizer)
    changed = X.clone()
    changed[:, -1] = 20
    mask = MASK if padded else None
    with torch.no_grad():
        before = adapter.logits(model, X, mask)
        after = adapter.logits(model, changed, mask)
    first = 3 if padded else 1  # first real position (+1 for Dream, whose position 0 uses its own logits)
    first = first if kind == "dream" else first - 1
    for row in range(2):
        start = first if padded and row == 1 else (1 if kind == "dream" else 0)
        assert (before[row, start] - after[row, start]).abs().max() > 1e-5, (kind, row)


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_left_padding_is_invisible(models, tokenizer, kind):
    """Padded keys are hidden: pad ids do not matter, and real positions match an unpadded run."""
    model = models[kind]
    adapter = resolve_adapter(model, tokenizer)
    other_pads = X.clone()
    other_pads[1, :2] = 15
    with torch.no_grad():
        padded = adapter.logits(model, X, MASK)
        repadded = adapter.logits(model, other_pads, MASK)
        unpadded = adapter.logits(model, X[1:, 2:])
        full_mask = adapter.logits(model, X[:1], MASK[:1])
        no_mask = adapter.logits(model, X[:1])
    # Dream: the first real position's aligned logits come from the (meaningless) pad row before it
    start = 3 if kind == "dream" else 2
    torch.testing.assert_close(padded[1, start:], repadded[1, start:])
    torch.testing.assert_close(padded[1, start:], unpadded[0, start - 2 :])
    torch.testing.assert_close(full_mask, no_mask)


def test_gemma_padded_batches_stay_bidirectional(tokenizer):
    """transformers builds a causal mask for padded Gemma batches unless `config.is_causal` is False."""
    model = build_tiny_masked_lm(tokenizer, "gemma", is_causal=True)  # what a hub config looks like
    changed = X.clone()
    changed[:, -1] = 20
    with torch.no_grad():
        before = model(input_ids=X, attention_mask=MASK).logits
        after = model(input_ids=changed, attention_mask=MASK).logits
    torch.testing.assert_close(before[:, 0], after[:, 0])  # the transformers quirk: padded => causal
    adapter = resolve_adapter(model, tokenizer)
    assert model.config.is_causal is False
    with torch.no_grad():
        before = adapter.logits(model, X, MASK)
        after = adapter.logits(model, changed, MASK)
    assert (before[:, 2] - after[:, 2]).abs().max() > 1e-4
    # sliding-window configs are left alone (the bidirectional mask builder would drop the window)
    sliding = Gemma2Config(use_bidirectional_attention=True, sliding_window=4, num_hidden_layers=2)
    assert ensure_bidirectional_padding_mask(sliding) is False
    assert getattr(sliding, "is_causal", True) is True


def test_bind_and_input_checks(models, tokenizer):
    model = models["llada"]
    adapter = resolve_adapter(model, tokenizer)
    logits_fn = adapter.bind(model)
    assert logits_fn.mask_token_id == 4
    with torch.no_grad():
        torch.testing.assert_close(logits_fn(X), adapter.logits(model, X))
        # a prompt-length mask is extended with ones over the generated positions
        prompt_mask = MASK[:, :6]
        bound = bind_denoiser(model, tokenizer, attention_mask=prompt_mask)
        torch.testing.assert_close(bound(X), adapter.logits(model, X, MASK))
    with pytest.raises(ValueError, match="cannot cover"):
        adapter.bind(model, MASK[:1])(X)
    with pytest.raises(ValueError, match=r"\[batch, length\]"):
        adapter.logits(model, X[0])
    with pytest.raises(ValueError, match="does not match"):
        adapter.logits(model, X, MASK[:, :5])


def test_adapter_logits_carry_gradients(models, tokenizer):
    model = models["dream"]
    adapter = resolve_adapter(model, tokenizer)
    logits = adapter.logits(model, X, MASK)
    logits[:, -1].logsumexp(-1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    model.zero_grad(set_to_none=True)


def test_left_padded_denoiser_reads_the_padding_off_each_input(models, tokenizer):
    """`bind_left_padded`, the one denoiser of the trainers and the evaluation: the pad run before the first real
    token is hidden (any row subset lines up), pad ids after it stay visible, and `disable_adapter` turns LoRA off."""
    from peft import LoraConfig, get_peft_model

    from trl_dam.models import left_padding_mask

    model = models["llada"]
    adapter = resolve_adapter(model, tokenizer)
    logits_fn = adapter.bind_left_padded(model, pad_token_id=0)
    assert torch.equal(left_padding_mask(X, 0), MASK)
    assert left_padding_mask(X[:1], 0) is None
    inner = X[:1].clone()
    inner[0, 5] = 0  # a pad id after the prompt is a token, not padding
    assert left_padding_mask(inner, 0) is None
    with torch.no_grad():
        torch.testing.assert_close(logits_fn(X), adapter.logits(model, X, MASK))
        torch.testing.assert_close(logits_fn(X[1:])[0, 2:], adapter.logits(model, X[1:, 2:])[0])
        peft_model = get_peft_model(
            build_tiny_masked_lm(tokenizer, "llada"),
            LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False),
        )
        base = adapter.bind_left_padded(peft_model, 0, disable_adapter=True)(X)
        with peft_model.disable_adapter():
            expected = adapter.logits(peft_model, X, MASK)
        torch.testing.assert_close(base, expected)
        assert not torch.allclose(adapter.bind_left_padded(peft_model, 0)(X), expected)
