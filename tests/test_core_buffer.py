"""ReplayBuffer: FIFO capacity, eviction, staleness and an exact state_dict round trip."""

from __future__ import annotations

import io

import pytest
import torch

from trl_dam.core import ReplayBuffer

pytestmark = pytest.mark.usefixtures("single_thread")


def _fill(buffer, n, start=0):
    for i in range(start, start + n):
        buffer.add(torch.tensor([i, i]), torch.tensor([10 * i]), torch.tensor([float(i)]), step=i, extra={"id": i})


def _ids(items):
    return [item.extra["id"] for item in items]


def test_capacity_and_fifo_eviction():
    buffer = ReplayBuffer(capacity=3, seed=0)
    with pytest.raises(RuntimeError):
        buffer.sample(1)
    _fill(buffer, 2)
    assert len(buffer) == 2
    _fill(buffer, 3, start=2)
    assert len(buffer) == 3 and buffer.num_added == 5
    assert _ids(buffer.items) == [2, 3, 4]
    assert [int(item.completion_ids) for item in buffer.items] == [20, 30, 40]
    assert buffer.items[0].rewards.dtype == torch.float32
    assert buffer.staleness(current_step=6) == pytest.approx((4 + 3 + 2) / 3)
    assert set(_ids(buffer.sample(200))) == {2, 3, 4}
    with pytest.raises(ValueError):
        ReplayBuffer(capacity=0)


def test_sampling_is_uniform_with_replacement():
    buffer = ReplayBuffer(capacity=4, seed=1)
    _fill(buffer, 4)
    counts = torch.bincount(torch.tensor(_ids(buffer.sample(40_000))), minlength=4).double() / 40_000
    assert (counts - 0.25).abs().max() < 5 * (0.25 * 0.75 / 40_000) ** 0.5


def test_state_dict_round_trip_gives_identical_future_samples():
    buffer = ReplayBuffer(capacity=5, seed=3)
    _fill(buffer, 7)
    buffer.sample(13)  # advance the RNG
    state = buffer.state_dict()
    blob = io.BytesIO()
    torch.save(state, blob)

    expected = _ids(buffer.sample(50))
    _fill(buffer, 2, start=100)  # later changes of the original must not leak into the saved state
    expected_after_add = _ids(buffer.sample(20))

    restored = ReplayBuffer(capacity=1, seed=99)
    restored.load_state_dict(state)
    assert restored.capacity == 5 and restored.num_added == 7 and _ids(restored.items) == [2, 3, 4, 5, 6]
    assert _ids(restored.sample(50)) == expected

    blob.seek(0)
    from_disk = ReplayBuffer(capacity=1, seed=7)
    from_disk.load_state_dict(torch.load(blob))
    assert _ids(from_disk.sample(50)) == expected
    _fill(from_disk, 2, start=100)
    assert _ids(from_disk.sample(20)) == expected_after_add
    for a, b in zip(from_disk.items, buffer.items):
        assert torch.equal(a.prompt_ids, b.prompt_ids) and a.step == b.step


def test_resize_evicts_the_oldest_and_then_keeps_the_new_capacity():
    buffer = ReplayBuffer(capacity=5, seed=0)
    _fill(buffer, 5)
    buffer.resize(2)
    assert buffer.capacity == 2 and _ids(buffer.items) == [3, 4]
    buffer.resize(4)
    _fill(buffer, 3, start=5)
    assert _ids(buffer.items) == [4, 5, 6, 7]
    with pytest.raises(ValueError, match="capacity must be >= 1, got 0"):
        buffer.resize(0)
