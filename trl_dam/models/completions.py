"""Where a sampled completion ends: the end-of-sequence ids of a tokenizer and model, and cutting completions there.

The trainers (rewards, diffu-GRPO's completion mask) and the evaluation decoders read completions the same way, as
TRL does: a completion runs up to and including its first end-of-sequence token, or fills the whole canvas.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["completion_lengths", "completion_texts", "cut_completions", "eos_token_ids"]


def eos_token_ids(tokenizer, model=None) -> list[int]:
    """End-of-sequence ids: the tokenizer's and the model's generation config's (e.g. LLaDA's ``<|eot_id|>`` then
    its ``<|endoftext|>`` padding), sorted."""
    model_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    model_eos = model_eos if isinstance(model_eos, list) else [model_eos]
    return sorted({tokenizer.eos_token_id, *model_eos} - {None})


def completion_lengths(completion_ids: Tensor, eos_ids: Sequence[int]) -> Tensor:
    """``LongTensor[n]``: tokens of each completion ``[n, N]`` up to and including its first end-of-sequence token
    (``N`` when it has none)."""
    is_eos = torch.isin(completion_ids, torch.tensor(list(eos_ids), device=completion_ids.device))
    return torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, completion_ids.shape[1])


def cut_completions(completion_ids: Tensor, eos_ids: Sequence[int]) -> list[list[int]]:
    """Each completion's token ids up to and including its first end-of-sequence token."""
    lengths = completion_lengths(completion_ids, eos_ids).tolist()
    return [row[:n].tolist() for row, n in zip(completion_ids, lengths)]


def completion_texts(tokenizer, completion_ids: Tensor, eos_ids: Sequence[int]) -> list[str]:
    """Cut each completion after its first end-of-sequence token and decode it without special tokens."""
    return tokenizer.batch_decode(cut_completions(completion_ids, eos_ids), skip_special_tokens=True)
