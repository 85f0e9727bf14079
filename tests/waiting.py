"""Waiting on conditions, not on the clock.

A test that sleeps a fixed time and then asserts is both slow (it always waits the whole time)
and flaky (on a loaded machine the time is not enough). `eventually` returns as soon as the
condition holds and fails with a message when a generous deadline passes, so the deadline costs
nothing when things work.

"Nothing happened" cannot be observed directly: wait for a positive sign that the system went
past the point where it would have happened (a log line, a later event), then assert.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

POLL_INTERVAL_S = 0.02


async def eventually(
    condition: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    *,
    what: str | None = None,
    interval: float = POLL_INTERVAL_S,
) -> T:
    """Call `condition` (sync or async) until it returns something truthy, and return that.

    Raises AssertionError naming `what` (or the condition) once `timeout` seconds have passed.
    `condition` may itself raise AssertionError to fail at once (e.g. the process it waits on
    has exited)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            name = what or getattr(condition, "__name__", repr(condition))
            raise AssertionError(f"gave up after {timeout:g} s waiting for {name}")
        await asyncio.sleep(min(interval, remaining))
