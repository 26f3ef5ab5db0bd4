"""A dispatch-level probe of the float32 memory the samplers and losses allocate at vocabulary width.

The denoisers of these tests compute in bfloat16, so every float32 ``[..., vocab]`` tensor seen under the probe was
built by the code under test; the probe records the largest *storage* behind such a tensor (a slice of a full-length
tensor keeps the whole storage alive, so slicing after the conversion does not hide it).
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class Float32VocabProbe(TorchDispatchMode):
    """``with Float32VocabProbe(vocab) as probe: ...``; then ``probe.largest_bytes``."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab
        self.largest_bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.dim() and t.shape[-1] == self.vocab:
                self.largest_bytes = max(self.largest_bytes, t.untyped_storage().nbytes())
        return out


def bf16_denoiser(vocab: int, length: int, seed: int = 0, requires_grad: bool = False):
    """A context-dependent bfloat16 denoiser: token embedding + mean over the sequence + a position term."""
    gen = torch.Generator().manual_seed(seed)
    table = (torch.randn(vocab, vocab, generator=gen) * 3).bfloat16().requires_grad_(requires_grad)
    position = torch.randn(length, vocab, generator=gen).bfloat16()

    def logits_fn(x: torch.Tensor) -> torch.Tensor:
        h = table[x]
        return h + 2 * h.mean(1, keepdim=True) + position[: x.shape[1]]

    logits_fn.table = table
    return logits_fn
