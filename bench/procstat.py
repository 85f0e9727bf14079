"""CPU time and peak memory of another process, read from /proc (Linux only)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the whole process (every thread, living or exited).

    /proc/PID/stat counts in clock ticks (10 ms); where every thread's schedstat is readable
    its nanosecond sum is used instead, falling back to ticks when a thread has exited
    (schedstat would then miss its time)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    precise = 0.0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            precise += int((task / "schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return ticks
    # schedstat also counts a little time ticks round away; a gap beyond a few ticks means a
    # thread exited and took its schedstat with it.
    return precise if precise >= ticks - 3 / CLOCK_TICKS else ticks


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the largest resident set since start or since the last reset_peak_rss."""
    return _status_kb(pid, "VmHWM") / 1024


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def reset_peak_rss(pid: int) -> bool:
    """Start a new VmHWM window (Linux >= 4.0, same user); False where not allowed."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    return False
