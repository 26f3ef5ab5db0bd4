"""Small building blocks shared by the project-owned tiny LLaDA- and Dream-shaped models.

These are written for tests, examples and CPU benchmarks: plain PyTorch, no caches, no fused kernels.
Shapes: `B` batch, `L` sequence length, `H` heads, `D` head dim, `E` model width.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class TinyRMSNorm(nn.Module):
    """Root-mean-square layer norm with a learned scale (the class name contains "RMSNorm" on purpose: transformers'
    default `_init_weights` then initialises the weight to ones)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., E] -> [..., E], computed in float32 and cast back."""
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x32 * self.weight.float()).to(x.dtype)


def rotary_cos_sin(
    position_ids: torch.LongTensor, head_dim: int, theta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary tables computed on the fly (no buffers, so meta-device init and `from_pretrained` need no special care).

    position_ids: [B, L] -> (cos, sin), each [B, 1, L, D].
    """
    inv_freq = 1.0 / (
        theta ** (torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim)
    )
    angles = position_ids.float()[..., None] * inv_freq  # [B, L, D/2]
    angles = torch.cat([angles, angles], dim=-1)[:, None]  # [B, 1, L, D]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE. x: [B, H, L, D]; cos/sin: [B, 1, L, D] -> [B, H, L, D]."""
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-second, first], dim=-1) * sin


def key_padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """Turn a 2-D padding mask into a boolean SDPA mask that hides padded *keys* from every query.

    attention_mask: [B, L] (1 = real token, 0 = padding) or None -> [B, 1, 1, L] bool, or None when nothing is padded.
    Padded query rows still attend to the real tokens, so no row is fully masked (no NaNs); their outputs are
    meaningless and callers must ignore them.
    """
    if attention_mask is None:
        return None
    if attention_mask.dim() != 2:
        raise ValueError(f"Expected a 2-D attention mask [batch, length], got shape {tuple(attention_mask.shape)}.")
    keep = attention_mask.bool()
    if bool(keep.all()):
        return None
    return keep[:, None, None, :]


def bidirectional_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, dropout_p: float = 0.0
) -> torch.Tensor:
    """Full (non-causal) attention. q: [B, H, L, D]; k/v: [B, Hkv, L, D] with H % Hkv == 0; mask: bool broadcastable
    to [B, H, L, L] (True = attend) or None -> [B, H, L, D]."""
    if k.shape[1] != q.shape[1]:
        repeat = q.shape[1] // k.shape[1]
        k = k.repeat_interleave(repeat, dim=1)
        v = v.repeat_interleave(repeat, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=False)
