"""Async reward functions, awaited as TRL's GRPOTrainer awaits them.

Every async reward of a scoring call (an ``async def`` function, or any function that returns an awaitable) is
awaited together, on one event loop that runs in a daemon thread (TRL's `start_event_loop_in_daemon`): the calls
overlap, and the trainer works where the calling thread already runs an event loop (Jupyter), where `asyncio.run`
would refuse to start.
"""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import Awaitable, Sequence

from trl.trainer.utils import shutdown_event_loop_in_daemon, start_event_loop_in_daemon

__all__ = ["RewardLoop", "RewardTimeoutError"]


class RewardTimeoutError(TimeoutError):
    """An awaited reward call took longer than the trainer's `reward_timeout`."""


class RewardLoop:
    """The background event loop of a trainer's async rewards, started on first use.

    Args:
        timeout: seconds each awaited reward call may take (`None`: no limit).
    """

    def __init__(self, timeout: float | None = None):
        self.timeout = timeout
        self._thread = self._loop = None

    def _started(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._thread, self._loop, ready = start_event_loop_in_daemon(name="trl_dam-RewardLoop")
            ready.wait()
            atexit.register(self.close)
        return self._loop

    def close(self) -> None:
        """Stop the loop and join its thread (registered with `atexit` when the loop starts)."""
        shutdown_event_loop_in_daemon(self._thread, self._loop)
        self._thread = self._loop = None

    def gather(self, calls: Sequence[tuple[str, Awaitable]]) -> list:
        """Await every ``(name, awaitable)`` concurrently; return each result, or the exception it raised.

        Every call runs to its end or its timeout, so none is left running when the caller raises the first error. A
        call that times out gives a `RewardTimeoutError` naming its function.
        """

        async def one(name: str, awaitable: Awaitable):
            try:
                return await asyncio.wait_for(awaitable, self.timeout)
            except asyncio.TimeoutError as err:
                raise RewardTimeoutError(
                    f"Reward function '{name}' did not return within `reward_timeout` = {self.timeout} s."
                ) from err

        async def every():
            return await asyncio.gather(*(one(name, call) for name, call in calls), return_exceptions=True)

        return asyncio.run_coroutine_threadsafe(every(), self._started()).result()
