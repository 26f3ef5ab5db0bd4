r"""The output projection (LM head) of a denoiser evaluated at requested positions only.

A sampler step of the masked CTMC reveals ``k`` positions per row and reads the logits there only, yet a forward
computes ``[B, L, V]`` logits: :math:`2 B L H V` FLOPs and :math:`B L V` floats of activation memory for ``k`` used
columns per row. With LLaDA-8B's vocabulary (126,464) those logits dominate a rollout call's activation memory and
the head is ~6.5% of its FLOPs; for small models with large vocabularies (MDLM: hidden 768, vocabulary 50k) the head
is a third of the compute or more.

:func:`output_head_at` restricts the head without knowing a model's internals: for the duration of one forward, a
forward pre-hook on the model's output-embedding module (``get_output_embeddings()``, found through PEFT / DDP /
DeepSpeed / compile wrappers) replaces its input, the final hidden states ``h: [B, L, H]``, by
``h[b, source[b, j]]: [B, P, H]``. Whatever the model's forward does after the head (LLaDA's logit scaling, Gemma's
soft-capping) is elementwise and still applies, so the model returns ``[B, P, V]`` logits equal to its full logits
gathered at ``source``.

transformers' native ``logits_to_keep`` forward argument does the same slicing but takes one index set shared by all
rows (an int or a 1-D tensor): per-row positions would need the union over rows (up to ``B k`` columns), and LLaDA's
and Dream's remote code and the masked-LM classes do not accept it. The hook works for every family.

The hook only restricts when it finds what it expects: a head module that is not the input embedding, called once,
on a ``[B, L, H]`` tensor. Otherwise the forward runs unchanged (full logits) and the caller gathers from them (exact,
not cheaper); the reason is logged once per model class at info level. A hook that is not honoured (e.g. inside a
``torch.compile`` graph traced without it) shows as full-size logits and takes the same route.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import logging

logger = logging.get_logger(__name__)

_LOGGED: set[tuple[str, str]] = set()
#: wrapper -> unwrapped model: `unwrap_model` costs milliseconds (accelerate looks up installed packages), a sampler
#: step of a small model about as much. The unwrapped model of a given wrapper object does not change.
_UNWRAPPED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def log_full_logits_once(model: nn.Module, reason: str) -> None:
    """Say once per (model class, reason) that the head runs at every position for ``model``."""
    key = (type(model).__name__, reason)
    if key not in _LOGGED:
        _LOGGED.add(key)
        logger.info(
            f"{key[0]}: computing the output projection at every position and gathering the requested ones ({reason})."
        )


def output_head(model: nn.Module) -> nn.Module | None:
    """The output-embedding module of ``model`` (wrappers stripped by `unwrap_model`), or ``None`` when the model
    declares none or it is its input embedding (a head that reuses the embedding table by ``F.linear`` cannot be
    hooked: the hook would fire on the token lookup)."""
    base = _UNWRAPPED.get(model)
    if base is None:
        from trl_dam.models.adapters import unwrap_model

        base = _UNWRAPPED[model] = unwrap_model(model)
    get_head = getattr(base, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    if not isinstance(head, nn.Module) or isinstance(head, nn.Embedding):
        return None
    get_input = getattr(base, "get_input_embeddings", None)
    if callable(get_input) and head is get_input():
        return None
    return head


@dataclass
class HeadRestriction:
    """What happened during one forward under :func:`output_head_at`.

    Attributes:
        calls: how many times the output head ran.
        gathered: whether a head input was replaced by its gathered rows.
        reason: why the head was not restricted, when it was not.
    """

    calls: int = 0
    gathered: bool = False
    reason: str = "the forward did not call the output head"

    @property
    def applied(self) -> bool:
        """The head ran exactly once, on the gathered hidden states: the logits are the restricted ones."""
        return self.gathered and self.calls == 1

    @property
    def untouched(self) -> bool:
        """No head input was replaced: the logits are the full ones."""
        return not self.gathered


@contextmanager
def output_head_at(model: nn.Module, source: torch.LongTensor, length: int) -> Iterator[HeadRestriction]:
    """Within the context, ``model``'s output head sees the final hidden states at ``source`` only.

    Args:
        model: the denoiser (possibly wrapped).
        source (`LongTensor[B, P]`): for each row, the positions of the hidden states to project (the *raw* positions:
            an adapter maps its aligned positions to them first, e.g. Dream's ``i -> max(i - 1, 0)``).
        length (`int`): the sequence length ``L`` of the forward's input; a head input of another shape is left alone.

    Yields:
        a :class:`HeadRestriction`: after the forward, ``applied`` means the logits are the restricted ones,
        ``untouched`` that they are the full ones; neither means the forward must be run again without the hook.
    """
    state = HeadRestriction()
    head = output_head(model)
    if head is None:
        state.reason = "no separate output-embedding module"
        yield state
        return
    batch = source.shape[0]
    rows = torch.arange(batch, device=source.device).unsqueeze(1)

    def gather_hidden(module, args):
        state.calls += 1
        hidden = args[0] if args else None
        if state.calls > 1:
            state.reason = "the output head was called more than once"
            return None
        if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3 or tuple(hidden.shape[:2]) != (batch, length):
            state.reason = f"the output head's input has shape {None if hidden is None else tuple(hidden.shape)}"
            return None
        state.gathered = True
        return (hidden[rows, source.to(hidden.device)], *args[1:])

    handle = head.register_forward_pre_hook(gather_hidden)
    try:
        yield state
    finally:
        handle.remove()
