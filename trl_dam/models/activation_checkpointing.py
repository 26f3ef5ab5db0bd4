"""Activation checkpointing for every model family, and pausing it for the rollouts without losing its settings.

Two mechanisms exist:

* transformers' own (`supports_gradient_checkpointing`, e.g. Dream): the Trainer turns it on from
  `gradient_checkpointing` / `gradient_checkpointing_kwargs`; each checkpointed module holds a boolean
  `gradient_checkpointing` and the function `_gradient_checkpointing_func` (a `partial` of
  `torch.utils.checkpoint.checkpoint` with the kwargs);
* the model's own, OLMo-style (LLaDA's remote code, which does not support the transformers API): its backbone has
  `set_activation_checkpointing(strategy)` with `strategy` one of [`OWN_STRATEGIES`] or `None`, reads
  `activation_checkpointing_strategy` at every forward and checkpoints blocks with `_activation_checkpoint_fn`.
  [`enable_own_activation_checkpointing`] turns it on.

Rollouts run without gradients, so checkpointing only costs them time. TRL's `unwrap_model_for_generation` switches
transformers checkpointing off and back on with the kwargs it is handed (the defaults when none), which drops a
user's `gradient_checkpointing_kwargs`, `every_n_layers` and `offload`; [`activation_checkpointing_paused`] instead
flips the flags / strategy off and restores exactly what was there, the functions untouched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn
from torch.utils.checkpoint import checkpoint

from .adapters import unwrap_model

#: `every_n_layers` of the transformers API -> the OLMo-style strategy that checkpoints the same blocks.
OWN_STRATEGIES = {1: "whole_layer", 2: "one_in_two", 3: "one_in_three", 4: "one_in_four"}


def own_checkpointing_backbone(model: nn.Module) -> nn.Module | None:
    """The submodule with its own `set_activation_checkpointing(strategy)` (LLaDA's backbone), or `None` when the
    model supports transformers checkpointing or has no such module."""
    base = unwrap_model(model)
    if getattr(base, "supports_gradient_checkpointing", False):
        return None
    for module in base.modules():
        if callable(getattr(module, "set_activation_checkpointing", None)) and hasattr(
            module, "activation_checkpointing_strategy"
        ):
            return module
    return None


def enable_own_activation_checkpointing(model: nn.Module, checkpointing_kwargs: dict[str, Any] | None = None) -> bool:
    """Turn on the model's own (OLMo-style) activation checkpointing; `False` when it has none.

    `checkpointing_kwargs` are the Trainer's `gradient_checkpointing_kwargs`: `every_n_layers` (1 to 4) picks the
    strategy, the rest goes to `torch.utils.checkpoint.checkpoint` (with `use_reentrant=False` unless given, as
    transformers does) and replaces the model's `_activation_checkpoint_fn`; without kwargs the model keeps its own.
    """
    backbone = own_checkpointing_backbone(model)
    if backbone is None:
        return False
    kwargs = dict(checkpointing_kwargs or {})
    every = kwargs.pop("every_n_layers", 1)
    if every not in OWN_STRATEGIES:
        raise ValueError(
            f"gradient_checkpointing_kwargs['every_n_layers']={every!r}: {type(backbone).__name__}'s own checkpointing "
            f"supports {sorted(OWN_STRATEGIES)}."
        )
    if kwargs.pop("offload", False):
        raise ValueError(
            f"gradient_checkpointing_kwargs['offload'] is not supported by {type(backbone).__name__}'s own "
            "checkpointing; remove it."
        )
    backbone.set_activation_checkpointing(OWN_STRATEGIES[every])
    if kwargs:
        backbone._activation_checkpoint_fn = functools.partial(checkpoint, **{"use_reentrant": False, **kwargs})
    if kwargs.get("use_reentrant"):
        # Reentrant checkpointing only backpropagates into blocks whose input requires grad (frozen embeddings: LoRA).
        unwrap_model(model).enable_input_require_grads()
    return True


def switch_off_activation_checkpointing(model: nn.Module) -> Callable[[], None]:
    """Clear every checkpointing flag (transformers) and strategy (the model's own); returns the function that puts
    them back. The checkpoint functions (and so the user's kwargs) are never touched."""
    base = unwrap_model(model)
    flagged = [m for m in base.modules() if getattr(m, "gradient_checkpointing", False) is True]
    strategies = [
        (m, m.activation_checkpointing_strategy)
        for m in base.modules()
        if callable(getattr(m, "set_activation_checkpointing", None))
        and getattr(m, "activation_checkpointing_strategy", None) is not None
    ]
    for module in flagged:
        module.gradient_checkpointing = False
    for module, _ in strategies:
        module.set_activation_checkpointing(None)

    def restore() -> None:
        for module in flagged:
            module.gradient_checkpointing = True
        for module, strategy in strategies:
            module.set_activation_checkpointing(strategy)

    return restore


@contextmanager
def activation_checkpointing_paused(model: nn.Module) -> Iterator[None]:
    """Within the block no module checkpoints; afterwards every flag and strategy is what it was."""
    restore = switch_off_activation_checkpointing(model)
    try:
        yield
    finally:
        restore()
