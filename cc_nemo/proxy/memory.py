"""Giving the heap back after big requests (glibc only; nothing elsewhere)."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import sys
from typing import Any

# After a body this big, freed heap pages are handed back to the system (malloc_trim)...
TRIM_AFTER_BODY_BYTES = 1024 * 1024
# ...a little later, off the request's path, and at most once per TRIM_INTERVAL: a trim walks
# the whole heap (a few ms), too much to pay on every turn of a long session.
TRIM_DELAY = 2.0
TRIM_INTERVAL = 30.0


# Young collections every this many allocations of containers, not CPython's 700: parsing a
# 120 KB Claude Code request allocates ~5,000, so the default ran several collections per
# request, each walking the live parsed body again (docs/architecture.md, "Memory and the collector").
GC_YOUNG_THRESHOLD = 5000


def settle_for_serving() -> None:
    """Once the proxy serves, in a process of its own (`run`, `serve`; not a test's proxy):
    what start-up allocated (modules, the app, the catalog: ~45,000 objects) leaves the
    collector's view for good, and young collections run less often. Measured over three
    bench scenarios: 202 ms of collection -> 14 ms, the longest pause 23.7 ms -> 1.7 ms."""
    gc.freeze()
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), older, oldest)


def _glibc() -> Any:
    """The C library's allocator entry points, where they are glibc's (else None)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # musl and others: no malloc_trim
        return None
    return libc


_LIBC = _glibc()


class HeapTrimmer:
    """Hands the heap pages big requests freed back to the system, soon after, at most once
    per TRIM_INTERVAL.

    31 requests of 1-33 MB left `cc-proxy serve` 9-51 MB above where it started: glibc keeps
    freed heap pages for reuse. A trim brings it back near the start (measured in
    bench/README.md). Pinning glibc's mmap threshold instead cost 60 % more CPU on a 2 MB
    history (every big buffer then page-faults anew)."""

    def __init__(self) -> None:
        self._pending: asyncio.TimerHandle | None = None
        self._last = -TRIM_INTERVAL

    def soon(self) -> None:
        if _LIBC is None or self._pending is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(TRIM_DELAY, self._last + TRIM_INTERVAL - loop.time())
        self._pending = loop.call_later(delay, self._trim, loop)

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _trim(self, loop: asyncio.AbstractEventLoop) -> None:
        self._pending = None
        self._last = loop.time()
        if _LIBC is not None:
            _LIBC.malloc_trim(0)
