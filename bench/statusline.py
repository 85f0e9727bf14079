"""Wall time of `cc-proxy statusline` as Claude Code runs it: a new process per message, the
session's JSON on stdin, one line on stdout. The floor is `python -c pass` with the same
interpreter (start-up and site-packages, which no entry point can avoid).

    .venv/bin/python bench/statusline.py [--runs 200] [--ledger PATH] [--command '...']

Without --ledger it builds a ledger of 20,000 requests over 60 days in a temporary directory
(about a heavy user's two months), so the session and today's sums run against a real index.
Runs alternate between the commands so a busy machine slows them alike. Bytecode is written
once to a scratch directory, as a pip install compiles it, even under PYTHONDONTWRITEBYTECODE."""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAX_CONTEXT_ENV = "CLAUDE_CODE_MAX_CONTEXT_TOKENS"
SESSION_ID = "5b0f3f7e-0c1d-4e2f-9a8b-7c6d5e4f3a2b"
RECORDED_STDIN = {
    "hook_event_name": "Status",
    "session_id": SESSION_ID,
    "transcript_path": f"/home/me/.claude/projects/demo/{SESSION_ID}.jsonl",
    "cwd": "/home/me/demo",
    "model": {"id": "nemotron", "display_name": "nemotron"},
    "workspace": {"current_dir": "/home/me/demo", "project_dir": "/home/me/demo"},
    "version": "2.1.332",
    "output_style": {"name": "default"},
    "cost": {
        "total_cost_usd": 1.93,
        "total_duration_ms": 812000,
        "total_api_duration_ms": 402000,
        "total_lines_added": 120,
        "total_lines_removed": 14,
    },
    "context_window": {
        "total_input_tokens": 388000,
        "total_output_tokens": 21000,
        "context_window_size": 256000,
        "current_usage": {
            "input_tokens": 1200,
            "output_tokens": 900,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 71800,
        },
        "used_percentage": 29,
        "remaining_percentage": 71,
    },
    "exceeds_200k_tokens": False,
}


def build_ledger(path: Path, *, requests: int = 20_000, days: int = 60) -> None:
    from cc_nemo.ledger.schema import INSERT_SQL, RequestRecord, connect

    rng = random.Random(1)
    now = time.time()
    sessions = [f"s{i:04d}" for i in range(400)] + [SESSION_ID]
    rows = []
    for index in range(requests):
        rows.append(
            RequestRecord(
                ts=now - rng.random() * days * 86400,
                proxy_session=f"p{index % 300}",
                claude_session=rng.choice(sessions),
                request_id=f"req_{index}",
                model="nemotron",
                upstream_model="workers-ai/@cf/nvidia/nemotron-3-120b-a12b",
                stream=True,
                status=200,
                error_type=None,
                attempts=1,
                input_tokens=rng.randint(500, 20_000),
                cache_read_tokens=rng.randint(0, 80_000),
                output_tokens=rng.randint(50, 3_000),
                reasoning_tokens=0,
                cost_usd=rng.random() / 50,
                ttft_ms=700.0,
                duration_ms=3000.0,
            ).row()
        )
    connection = connect(path)
    assert connection is not None
    connection.executemany(INSERT_SQL, rows)
    connection.commit()
    connection.close()


def time_run(argv: list[str], stdin: bytes, env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms) of one run. On a shared machine the wall time also counts waiting for
    a core; the CPU time (user + system, from wait4) is the work itself."""
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    process.stdin.write(stdin)  # type: ignore[union-attr]
    process.stdin.close()  # type: ignore[union-attr]
    process.stdout.read()  # type: ignore[union-attr]
    errors = process.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)} failed: {errors.decode(errors='replace')}")
    return elapsed * 1000, (usage.ru_utime + usage.ru_stime) * 1000


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--ledger", type=Path, help="an existing ledger (default: a built one)")
    parser.add_argument(
        "--command",
        default=str(Path(sys.executable).parent / "cc-proxy") + " statusline",
        help="the status line command (default: this venv's cc-proxy statusline)",
    )
    parser.add_argument("--extra", action="append", default=[], help="another command to time")
    parser.add_argument(
        "--outside-run",
        action="store_true",
        help="also time the status line of a claude not started by `cc-proxy run`",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        ledger = args.ledger or Path(scratch) / "usage.sqlite3"
        if args.ledger is None:
            build_ledger(ledger)
        # As under `cc-proxy run`, whose environment claude passes on to the status line.
        env = {**os.environ, "CC_PROXY_LEDGER": str(ledger), MAX_CONTEXT_ENV: "256000"}
        # As installed: pip byte-compiles the package, so no run compiles our sources. The
        # bytecode goes to a scratch directory (the first, untimed run writes it).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(scratch) / "pycache")
        stdin = json.dumps(RECORDED_STDIN).encode()
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "cc-proxy statusline": shlex.split(args.command),
        }
        for extra in args.extra:
            commands[extra] = shlex.split(extra)
        environments = {name: env for name in commands}
        if args.outside_run:
            # claude started without `run`: the status line reads the catalog for the window.
            name = "statusline, not under run"
            commands[name] = shlex.split(args.command)
            environments[name] = {k: v for k, v in env.items() if k != MAX_CONTEXT_ENV}
        for name, argv in commands.items():
            sample = subprocess.run(
                argv, input=stdin, capture_output=True, env=environments[name], check=True
            )
            if name == "cc-proxy statusline":
                print(f"output: {sample.stdout.decode().rstrip()}")
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                wall, cpu = time_run(argv, stdin, environments[name])
                walls[name].append(wall)
                cpus[name].append(cpu)
        print(f"{args.runs} runs each, ms; wall: process start to exit; cpu: user + system")
        print(
            f"{'command':<28} {'wall med':>9} {'wall p90':>9} {'wall min':>9} "
            f"{'cpu med':>8} {'cpu p90':>8}"
        )
        for name in commands:
            wall, cpu = walls[name], cpus[name]
            print(
                f"{name:<28} {statistics.median(wall):9.1f} {percentile(wall, 0.9):9.1f} "
                f"{min(wall):9.1f} {statistics.median(cpu):8.1f} {percentile(cpu, 0.9):8.1f}"
            )


if __name__ == "__main__":
    main()
