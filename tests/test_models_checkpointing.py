"""Activation checkpointing: LLaDA-style models use their own (`set_activation_checkpointing`), and pausing it for the
rollouts restores exactly what was set (flags, strategy, the checkpoint function with the user's kwargs)."""

from __future__ import annotations

import pytest
import torch

from trl_dam.models import (
    activation_checkpointing_paused,
    build_char_tokenizer,
    build_tiny_masked_lm,
    enable_own_activation_checkpointing,
    own_checkpointing_backbone,
)

pytestmark = pytest.mark.usefixtures("single_thread")

X = torch.tensor([[2, 6, 9, 4, 4, 3], [2, 6, 10, 11, 4, 3]])


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer("abcdefghij0123456789")


def _counting(fn):
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(torch.is_grad_enabled())
        return fn(*args, **kwargs)

    wrapper.calls = calls
    return wrapper


@pytest.mark.parametrize("every,checkpointed", [(1, 4), (2, 2), (3, 2), (4, 1)])
def test_llada_own_checkpointing_same_gradients_and_strategy(tokenizer, every, checkpointed):
    def grads(enable: bool):
        model = build_tiny_masked_lm(tokenizer, "llada", num_layers=4).train()
        if enable:
            kwargs = {"use_reentrant": False, "preserve_rng_state": False, "every_n_layers": every}
            assert enable_own_activation_checkpointing(model, kwargs)
            backbone = own_checkpointing_backbone(model)
            assert backbone is model.model
            assert backbone._activation_checkpoint_fn.keywords == {"use_reentrant": False, "preserve_rng_state": False}
            backbone._activation_checkpoint_fn = counter = _counting(backbone._activation_checkpoint_fn)
        model(input_ids=X).logits.logsumexp(-1).sum().backward()
        if enable:
            assert len(counter.calls) == checkpointed  # blocks 0, every, 2 * every, ... of 4
        return {name: p.grad for name, p in model.named_parameters()}

    plain, checkpointed_grads = grads(False), grads(True)
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed_grads[name], grad)


def test_own_checkpointing_errors_name_the_key(tokenizer):
    model = build_tiny_masked_lm(tokenizer, "llada")
    with pytest.raises(ValueError, match="every_n_layers"):
        enable_own_activation_checkpointing(model, {"every_n_layers": 5})
    with pytest.raises(ValueError, match="offload"):
        enable_own_activation_checkpointing(model, {"offload": True})
    assert not enable_own_activation_checkpointing(build_tiny_masked_lm(tokenizer, "dream"))  # transformers' API


def test_pause_restores_transformers_and_own_checkpointing_exactly(tokenizer):
    dream = build_tiny_masked_lm(tokenizer, "dream").train()
    dream.activation_checkpointing_enable(
        activation_checkpointing_kwargs={"use_reentrant": False, "preserve_rng_state": False}
    )
    dream_fn = dream.model._gradient_checkpointing_func
    llada = build_tiny_masked_lm(tokenizer, "llada").train()
    enable_own_activation_checkpointing(llada, {"use_reentrant": False, "preserve_rng_state": False})
    own_fn = llada.model._activation_checkpoint_fn
    with activation_checkpointing_paused(dream), activation_checkpointing_paused(llada):
        assert not dream.is_activation_checkpointing
        assert llada.model.activation_checkpointing_strategy is None
        llada.model._activation_checkpoint_fn = counter = _counting(own_fn)
        with torch.no_grad():
            llada(input_ids=X)
        assert counter.calls == []  # LLaDA checkpoints even without gradients unless paused
        llada.model._activation_checkpoint_fn = own_fn
    assert dream.is_activation_checkpointing and dream.model.gradient_checkpointing
    assert dream.model._gradient_checkpointing_func is dream_fn
    assert dream_fn.keywords == {"use_reentrant": False, "preserve_rng_state": False}
    assert llada.model.activation_checkpointing_strategy == "whole_layer"
    assert llada.model._activation_checkpoint_fn is own_fn
