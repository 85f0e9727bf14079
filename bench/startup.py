"""Start-up costs a user feels: `cc-proxy --help`, and `cc-proxy run` until claude is spawned.

The fake claude is a bash script that writes bash's own clock ($EPOCHREALTIME, no extra exec)
to a file and exits at once; launch time = that stamp minus the moment just before we exec
`cc-proxy run nemotron --claude <fake> --quiet`.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

FAKE_CLAUDE = """#!/bin/bash
printf '%s\\n' "$EPOCHREALTIME" > "$BENCH_SPAWNED_FILE"
"""
RUN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Timing:
    median_ms: float
    min_ms: float
    max_ms: float
    samples: int

    @classmethod
    def of(cls, seconds: list[float]) -> Timing:
        ms = [s * 1000 for s in seconds]
        return cls(statistics.median(ms), min(ms), max(ms), len(ms))


def help_time(cc_proxy: str, env: Mapping[str, str], repeats: int) -> Timing:
    """Wall time of `cc-proxy --help`, first run (cold page cache) not counted."""
    subprocess.run([cc_proxy, "--help"], env=dict(env), capture_output=True, check=True)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([cc_proxy, "--help"], env=dict(env), capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return Timing.of(times)


def write_fake_claude(directory: Path) -> Path:
    path = directory / "fake-claude"
    path.write_text(FAKE_CLAUDE)
    path.chmod(0o755)
    return path


def launch_time(
    cc_proxy: str, env: Mapping[str, str], workdir: Path, repeats: int
) -> tuple[Timing, Timing]:
    """(command start → claude spawned, command start → cc-proxy exited), first run not counted."""
    fake = write_fake_claude(workdir)
    stamp = workdir / "spawned-at"
    run_env = {**env, "BENCH_SPAWNED_FILE": str(stamp), "LC_ALL": "C"}
    argv = [cc_proxy, "run", "nemotron", "--claude", str(fake), "--quiet"]
    spawned: list[float] = []
    exited: list[float] = []
    for attempt in range(repeats + 1):
        stamp.unlink(missing_ok=True)
        started = time.time()
        process = subprocess.run(
            argv, env=run_env, capture_output=True, timeout=RUN_TIMEOUT_S, check=False
        )
        ended = time.time()
        if process.returncode != 0 or not stamp.exists():
            raise RuntimeError(
                f"cc-proxy run failed ({process.returncode}): "
                f"{process.stderr.decode('utf-8', 'replace')[-500:]}"
            )
        if attempt == 0:
            continue
        spawned.append(float(stamp.read_text().strip().replace(",", ".")) - started)
        exited.append(ended - started)
    return Timing.of(spawned), Timing.of(exited)


def clean_env(base: Mapping[str, str]) -> dict[str, str]:
    """The environment without anything that would send loopback traffic through a proxy."""
    env = {
        k: v
        for k, v in base.items()
        if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def venv_script(name: str) -> str:
    """A console script installed next to this interpreter (the project's venv)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"bench: `{name}` not found next to {sys.executable} or on PATH")
    return found
