"""Replay buffer of (prompt, completion X1) pairs with their rewards (paper Algorithm 1, line 2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class BufferItem:
    """One stored sample: prompt ids, the completed state ``X1``, its rewards and when it was added.

    ``extra`` carries anything the caller needs again at training time (e.g. dataset columns for rewards).
    """

    prompt_ids: Tensor
    completion_ids: Tensor
    rewards: Tensor
    step: int
    extra: dict[str, Any] = field(default_factory=dict)


class ReplayBuffer:
    """First-in-first-out buffer of fixed capacity with uniform sampling.

    Tensors are stored on CPU so the buffer neither holds accelerator memory nor depends on a device when it
    is checkpointed. ``state_dict`` / ``load_state_dict`` round-trip the contents and the sampling RNG, so a
    resumed run draws exactly what the uninterrupted run would have drawn.
    """

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"replay buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.items: list[BufferItem] = []
        self.num_added = 0
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.items)

    def add(
        self, prompt_ids: Tensor, completion_ids: Tensor, rewards: Tensor, step: int, extra: dict | None = None
    ) -> None:
        """Append one sample, evicting the oldest once full."""
        # clone(): the buffer must own its rows, not alias (and keep alive) the caller's whole batch.
        item = BufferItem(
            prompt_ids.detach().cpu().clone(),
            completion_ids.detach().cpu().clone(),
            rewards.detach().cpu().float().clone(),
            step,
            dict(extra or {}),
        )
        self.items.append(item)
        self.num_added += 1
        if len(self.items) > self.capacity:
            self.items.pop(0)

    def sample(self, num: int) -> list[BufferItem]:
        """Draw ``num`` items uniformly with replacement."""
        if not self.items:
            raise RuntimeError("cannot sample from an empty replay buffer")
        index = torch.randint(len(self.items), (num,), generator=self.generator)
        return [self.items[i] for i in index.tolist()]

    def resize(self, capacity: int) -> None:
        """Change the capacity; when it shrinks below the stored count, the oldest samples are evicted (FIFO)."""
        if capacity < 1:
            raise ValueError(f"replay buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        del self.items[: max(0, len(self.items) - capacity)]

    def staleness(self, current_step: int) -> float:
        """Mean age in optimizer steps of the stored samples."""
        if not self.items:
            return 0.0
        return float(sum(current_step - item.step for item in self.items) / len(self.items))

    def state_dict(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "num_added": self.num_added,
            "generator": self.generator.get_state(),
            "items": [vars(item).copy() for item in self.items],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.capacity = state["capacity"]
        self.num_added = state["num_added"]
        self.generator.set_state(state["generator"])
        self.items = [BufferItem(**item) for item in state["items"]]
