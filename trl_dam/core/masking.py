r"""The forward (masking) process used to build DAM training states (paper Algorithm 1, line 5).

DAM trains on states :math:`X_t \sim p^{\mathrm{base}}_{t|0,1}(\cdot \mid X_0, X_1)`, the "reciprocal projection"
between the all-masked completion :math:`X_0` and a model sample :math:`X_1`. For masked diffusion with the linear
schedule, this keeps each completion token of :math:`X_1` independently with probability :math:`t` and masks the rest.
The masked jump chain is time-homogeneous, so only the *number* of revealed tokens matters, and integrating
:math:`t \sim U[0, 1]` out of :math:`n \sim \mathrm{Binomial}(N, t)` gives :math:`n` uniform on :math:`\{0, \dots, N\}`.
:math:`n = N` leaves nothing to unmask (no jump to train on), so it is dropped: :math:`n \sim U\{0, \dots, N-1\}`,
then a uniformly random :math:`n`-subset of the completion is revealed.
"""

from __future__ import annotations

import torch
from torch import Tensor


def remask(
    x1: Tensor, maskable: Tensor, mask_token_id: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    r"""Draw a training state :math:`X_t` from a complete sample :math:`X_1` by re-masking part of it.

    Per row :math:`b` with :math:`N_b` maskable positions: :math:`n_b \sim U\{0, \dots, N_b - 1\}`, reveal a uniformly
    random :math:`n_b`-subset of the maskable positions, replace the other :math:`N_b - n_b` by the mask token. Every
    row with :math:`N_b \ge 1` keeps at least one mask. Positions outside ``maskable`` (the prompt, padding) are never
    touched.

    Args:
        x1 (`LongTensor[batch, length]`): complete sequences (prompt and completion).
        maskable (`BoolTensor[batch, length]`): ``True`` on the completion positions that may be re-masked.
        mask_token_id (`int`): the mask id.
        generator: CPU random generator (the draws are made on CPU, so results do not depend on the device).

    Returns:
        ``(x_t, num_revealed)``: `LongTensor[batch, length]` states and `LongTensor[batch]` counts :math:`n_b`.
    """
    batch = x1.shape[0]
    num_maskable = maskable.sum(1)
    u = torch.rand(batch, generator=generator, device="cpu").to(x1.device)
    # floor(u * N) is uniform on {0..N-1}; the clamp guards u * N rounding up to N in float32.
    num_revealed = torch.minimum((u * num_maskable).long(), (num_maskable - 1).clamp(min=0))
    # A uniformly random ranking of the maskable positions: the n_b lowest ranks are revealed.
    keys = torch.rand(x1.shape, generator=generator, device="cpu").to(x1.device)
    keys = keys.masked_fill(~maskable, float("inf"))
    rank = keys.argsort(1).argsort(1)
    hidden = maskable & (rank >= num_revealed.unsqueeze(1))
    return x1.masked_fill(hidden, mask_token_id), num_revealed
