r"""One denoiser call per group of identical rows: the first step of the ``K`` rollouts from one training state.

DAM runs ``K`` rollouts from each training state :math:`X_t`, as ``K`` consecutive copies of it
(``repeat_interleave``). The first sampler step therefore calls the policy and the reference on ``K`` identical rows.
:class:`GroupedRowsDenoiser` notices it (an exact equality check, cheap next to a forward) and calls the denoiser on
one row per group, then repeats the logits: the same numbers for :math:`1/K` of that step's compute. Every later call,
whose rows have diverged, goes straight to the denoiser. With ``N`` masks the rollouts make about ``N`` calls, so the
saving is :math:`(1 - 1/K)/N` of the rollout cost: large for short completions, about 0.7% at ``N = 128, K = 12``.

Asked for ``positions`` (``[B, P]``, different in each copy: every rollout reveals its own positions), the shared call
asks the denoiser for all ``K P`` positions of the group on its one row and hands each copy its ``P``: the trunk runs
once per group, the output projection at the ``K P`` requested positions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trl_dam.core.sampling import LogitsFn, logits_at


class GroupedRowsDenoiser:
    """Wrap ``logits_fn``; each run of ``group`` identical rows (aligned on multiples of ``group``) runs once.

    Attributes:
        rows_saved (`int`): denoiser rows not computed so far.
    """

    accepts_positions = True

    def __init__(self, logits_fn: LogitsFn, group: int):
        if group < 1:
            raise ValueError(f"group must be >= 1, got {group}")
        self.logits_fn, self.group, self.rows_saved = logits_fn, group, 0

    def __call__(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        # Groups are checked one by one, so rows that are not rollouts (DAM's folded generation rows, placed after
        # the groups) and groups that already diverged leave the identical groups' saving intact.
        lead = x.shape[0] - x.shape[0] % self.group
        same = None
        if self.group > 1 and lead:
            grouped = x[:lead].view(-1, self.group, *x.shape[1:])
            same = (grouped == grouped[:, :1]).flatten(1).all(1)
        if same is None or not bool(same.any()):
            return self.logits_fn(x) if positions is None else logits_at(self.logits_fn, x, positions)
        computed = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        computed[:lead].view(-1, self.group)[same, 1:] = False
        self.rows_saved += x.shape[0] - int(computed.sum())
        # Row r reads the output of its group's first row when its group is identical, else its own.
        source = torch.arange(x.shape[0], device=x.device)
        source[:lead].view(-1, self.group)[same] = source[:lead].view(-1, self.group)[same, :1]
        source = (computed.cumsum(0) - 1)[source]
        if positions is None:
            return self.logits_fn(x[computed])[source]
        # One positions row per computed row, K P wide: a shared group's first row asks for all its copies'
        # positions, any other row for its own P, repeated K times (duplicates only widen the projection).
        width = positions.shape[1]
        wide = positions.repeat(1, self.group)
        wide[:lead].view(-1, self.group, self.group * width)[same, 0] = positions[:lead].reshape(
            -1, self.group * width
        )[same]
        copy = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        copy[:lead].view(-1, self.group)[same] = torch.arange(self.group, device=x.device)
        out = logits_at(self.logits_fn, x[computed], wide[computed])
        return out[source.unsqueeze(1), (copy * width).unsqueeze(1) + torch.arange(width, device=x.device)]
