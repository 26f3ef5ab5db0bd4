r"""Base distributions and rewards of the paper's synthetic benchmark (App. C.1) on an ``M x M`` grid.

The paper fixes the rewards but not the base distributions; ours are:

* **Checkerboard** — a noisy, near-uniform base: :math:`p_{\mathrm{base}} \propto \exp(0.3\,\varepsilon)` with
  :math:`\varepsilon` i.i.d. standard normal per cell (seed 0). The grid is cut into ``7 x 7`` checkerboard squares;
  "black" squares (block indices :math:`b_1 + b_2` even) are rewarded: +4.6 on the diagonal, +4.0 on the nearest
  off-diagonal black squares (:math:`|b_1 - b_2| = 2`, the super/sub-diagonal of the black sub-lattice), +3.4 on the
  other black squares; white squares get 0.
* **Pinwheel** — a discretised three-arm pinwheel: Gaussian blobs bent along a spiral, rasterised on the grid, plus
  a uniform floor of 0.1% mass so that every cell has positive probability. Three circles of radius ``0.11 M``
  centred on the arms carry rewards +0.5, -1 and -20; the rest of the grid 0.

Both bases are turned into an order-consistent two-jump masked chain by :func:`trl_dam.synthetic.chain.base_chain`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

TASKS = ("checkerboard", "pinwheel")


def checkerboard(size: int = 91, blocks: int = 7, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Return ``(p_base[size, size], reward[size, size])`` for the Checkerboard task (float64)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(size, size, generator=generator, dtype=torch.float64)
    p_base = torch.softmax((0.3 * noise).flatten(), 0).view(size, size)
    block = torch.arange(size) * blocks // size
    b1, b2 = block[:, None], block[None, :]
    distance = (b1 - b2).abs()
    black = (b1 + b2) % 2 == 0
    reward = torch.where(distance == 0, 4.6, torch.where(distance == 2, 4.0, 3.4)).double()
    reward = torch.where(black, reward, torch.zeros_like(reward))
    return p_base, reward


def pinwheel(size: int = 91, arms: int = 3, floor: float = 1e-3) -> tuple[Tensor, Tensor]:
    """Return ``(p_base[size, size], reward[size, size])`` for the Pinwheel task (float64)."""
    coords = torch.linspace(-1.0, 1.0, size, dtype=torch.float64)
    x, y = coords[:, None].expand(size, size), coords[None, :].expand(size, size)
    radius = torch.sqrt(x**2 + y**2)
    angle = torch.atan2(y, x)
    density = torch.zeros(size, size, dtype=torch.float64)
    for arm in range(arms):
        # Along an arm the angle grows with the radius (the "bend" of the pinwheel).
        centre_angle = 2 * math.pi * arm / arms + 2.2 * radius
        delta = torch.remainder(angle - centre_angle + math.pi, 2 * math.pi) - math.pi
        density += torch.exp(-0.5 * (delta / 0.28) ** 2) * torch.exp(-0.5 * ((radius - 0.55) / 0.22) ** 2)
    p_base = density / density.sum()
    p_base = (1 - floor) * p_base + floor / size**2
    reward = torch.zeros(size, size, dtype=torch.float64)
    for arm, value in zip(range(arms), (0.5, -1.0, -20.0)):
        theta = 2 * math.pi * arm / arms + 2.2 * 0.55
        cx, cy = 0.55 * math.cos(theta), 0.55 * math.sin(theta)
        inside = (x - cx) ** 2 + (y - cy) ** 2 <= 0.22**2
        reward = torch.where(inside, torch.full_like(reward, value), reward)
    return p_base, reward


def make_task(name: str, size: int = 91) -> tuple[Tensor, Tensor]:
    """``(p_base, reward)`` for ``name`` in :data:`TASKS`."""
    if name == "checkerboard":
        return checkerboard(size)
    if name == "pinwheel":
        return pinwheel(size)
    raise ValueError(f"unknown synthetic task {name!r}; choose one of {TASKS}")
