"""`cc-proxy` under cProfile, switched on and off by the load client (bench/run.py --profile).

    python bench/profiled_proxy.py serve nemotron-bench --quiet

SIGUSR1 starts a fresh profile of the proxy's main thread (the event loop: HTTP, translation,
streaming; the log writer thread is not in it); SIGUSR2 stops it and writes the pstats file
named by $BENCH_PROFILE_OUT (written under a temporary name, then renamed, so the reader never
sees half a file). Profiling makes Python code 1.5-3x slower, so the timings of a profiled run
are only good for comparing functions with each other.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
from types import FrameType


class _Switch:
    def __init__(self, out: str) -> None:
        self.out = out
        self.profile: cProfile.Profile | None = None

    def start(self, _signum: int, _frame: FrameType | None) -> None:
        if self.profile is not None:
            self.profile.disable()
        self.profile = cProfile.Profile()
        self.profile.enable()

    def stop(self, _signum: int, _frame: FrameType | None) -> None:
        profile, self.profile = self.profile, None
        if profile is None:
            return
        profile.disable()
        partial = self.out + ".partial"
        profile.dump_stats(partial)
        os.replace(partial, self.out)


def main() -> None:
    out = os.environ.get("BENCH_PROFILE_OUT")
    if not out:
        raise SystemExit("profiled_proxy: set BENCH_PROFILE_OUT to the pstats file to write")
    switch = _Switch(out)
    signal.signal(signal.SIGUSR1, switch.start)
    signal.signal(signal.SIGUSR2, switch.stop)
    from cc_nemo.cli.main import main as cli_main

    sys.argv[0] = "cc-proxy"
    cli_main()


if __name__ == "__main__":
    main()
