"""Resident memory of `cc-proxy serve` after a run of big requests (a script, not a test).

    python bench/memory_bodies.py            # 28 requests of 1-28 MB, Read-tool history
    python bench/memory_bodies.py --shape text

Sends the bodies one after another to a real `cc-proxy serve` in front of bench/'s mock
upstream, and prints VmRSS before the first, the peak (VmHWM), and VmRSS a few seconds after
the last (the proxy trims its heap off the request path, at most every 30 s).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import procstat
import run

SIZES_MB = [1 + n for n in range(28)]  # 1 .. 28 MB: a longer history overflows even 4M tokens
SETTLE_S = 33.0  # past the proxy's TRIM_INTERVAL, so its last trim has run


def history_body(megabytes: int) -> dict[str, Any]:
    """A Claude Code-shaped history of Read turns adding up to about `megabytes`."""
    lines = "\n".join(f"{n}\tdef function_{n}(x): return x * {n}  # case {n}" for n in range(500))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "read the files"}]
    turn = 0
    while len(lines) * turn < megabytes * 1_000_000:
        tool_id = f"toolu_{turn:06d}"
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": tool_id, "name": "Read", "input": {"file": turn}}
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": lines}],
            }
        )
        turn += 1
    return {"model": "claude-opus-5-5", "max_tokens": 1000, "stream": True, "messages": messages}


def text_body(megabytes: int) -> dict[str, Any]:
    text = "lorem ipsum dolor sit amet " * (megabytes * 1_000_000 // 27)
    return {
        "model": "claude-opus-5-5",
        "max_tokens": 1000,
        "stream": True,
        "messages": [{"role": "user", "content": text}],
    }


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("history", "text"), default="history")
    args = parser.parse_args(argv)
    make = history_body if args.shape == "history" else text_body
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mock, mock_url = await run.start_mock(work)
        proxy, proxy_url = await run.start_proxy(run.proxy_env(work, mock_url), work, "asyncio")
        try:
            headers = {"Authorization": f"Bearer {run.TOKEN}", "Content-Type": "application/json"}
            async with aiohttp.ClientSession(trust_env=False) as session:
                small = orjson.dumps(
                    text_body(0) | {"messages": [{"role": "user", "content": "hi"}]}
                )
                async with session.post(
                    f"{proxy_url}/v1/messages", data=small, headers=headers
                ) as r:
                    await r.read()
                start = procstat.rss_mb(proxy.pid)
                procstat.reset_peak_rss(proxy.pid)
                began = time.monotonic()
                for size in SIZES_MB:
                    body = orjson.dumps(make(size))
                    async with session.post(
                        f"{proxy_url}/v1/messages", data=body, headers=headers
                    ) as response:
                        await response.read()
                        if response.status != 200:
                            print(f"{size} MB: HTTP {response.status}", file=sys.stderr)
                elapsed = time.monotonic() - began
                await asyncio.sleep(SETTLE_S)
                end = procstat.rss_mb(proxy.pid)
                peak = procstat.peak_rss_mb(proxy.pid)
        finally:
            await proxy.stop()
            await mock.stop()
    print(
        f"{args.shape}: {len(SIZES_MB)} requests of 1-{SIZES_MB[-1]} MB in {elapsed:.1f} s; "
        f"RSS {start:.1f} MB before, {peak:.1f} MB peak, {end:.1f} MB after "
        f"({end - start:+.1f} MB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
