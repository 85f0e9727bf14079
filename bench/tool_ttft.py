"""How soon a tool call reaches the client: through a real `cc-proxy serve`, from a paced upstream.

    python bench/tool_ttft.py [--fragments 400] [--interval-ms 10] [--rounds 5]
                              [--source DIR] [--json PATH]

A paced OpenAI-compatible upstream (an aiohttp app in this process) answers with a `Write`
call: the name first (`arguments: ""`), then the arguments of a ~2,000-token file in
`--fragments` pieces `--interval-ms` apart, then, one interval later, the finish (finish_reason,
usage, `[DONE]`). The proxy runs as a child process,
`cc-proxy serve`, configured as bench/run.py configures it; `--source DIR` runs it from another
source tree (an older checkout, for a before/after comparison). The client, in this process
too, reads the SSE answer, so the upstream's send times and the client's receive times come
from one clock. Per round it records:

    block start   from the upstream sending the name to the client receiving the
                  `content_block_start` of type tool_use
    first input   from the upstream sending the first argument fragment to the client
                  receiving the first `input_json_delta`
    last input    from the upstream sending the last fragment to the client receiving the
                  last `input_json_delta` (it has the whole input)
    block stop    from the upstream sending the finish to the client receiving the block's
                  `content_block_stop`

and prints the medians (and the worst round). A translator that buffers tool calls shows the
whole stream's length in the first two; the target is a few milliseconds. The block stop must
not come before the finish (Claude Code runs a stopped tool_use block at once, even if the
stream then fails: docs/wire.md): a proxy that stops the block when the object closes shows
about minus one interval there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

# isort: split
# Sibling modules: bench/ is on sys.path when run as `python bench/tool_ttft.py`.
import bodies
import run

# `cc-proxy serve` from whichever cc_nemo is first on PYTHONPATH (see --source).
BOOT = "import sys; from cc_nemo.cli.main import main; sys.argv[0] = 'cc-proxy'; main()"
TOOL = {
    "name": "Write",
    "description": "Write a file.",
    "input_schema": {
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["file_path", "content"],
    },
}


def file_arguments() -> str:
    """A Write call's arguments for a ~2,000-token Python file (quotes, newlines, non-ASCII)."""
    lines = []
    for n in range(75):
        lines.append(f'def step_{n}(value: str = "é{n}") -> str:')
        lines.append(f'    return value.replace(\'"\', "\'") + "\\t{n}"  # ✓ step {n}')
    content = "\n".join(lines) + "\n"
    return orjson.dumps({"file_path": "/tmp/bench/steps.py", "content": content}).decode()


def pieces(text: str, count: int) -> list[str]:
    size = max(1, -(-len(text) // count))
    return [text[i : i + size] for i in range(0, len(text), size)]


@dataclass
class Round:
    block_start_ms: float
    first_input_ms: float
    last_input_ms: float
    block_stop_ms: float
    stream_s: float  # the upstream's own length, name to last fragment


class PacedUpstream:
    """Sends the tool call as scripted and notes when it sent what."""

    def __init__(self, fragments: list[str], interval: float) -> None:
        self.fragments = fragments
        self.interval = interval
        self.sent: dict[str, float] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(delta: dict[str, Any], **choice: Any) -> None:
            payload = {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, **choice}],
            }
            await response.write(b"data: " + orjson.dumps(payload) + b"\n\n")

        await send({"role": "assistant", "content": ""})
        name = {"index": 0, "id": "call_bench", "type": "function",
                "function": {"name": "Write", "arguments": ""}}  # fmt: skip
        self.sent["name"] = time.perf_counter()
        await send({"tool_calls": [name]})
        for n, fragment in enumerate(self.fragments):
            await asyncio.sleep(self.interval)
            self.sent.setdefault("first", time.perf_counter())
            if n == len(self.fragments) - 1:
                self.sent["last"] = time.perf_counter()
            await send({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]})
        await asyncio.sleep(self.interval)
        self.sent["end"] = time.perf_counter()
        await send({}, finish_reason="tool_calls")
        usage = {"prompt_tokens": 900, "completion_tokens": 2000, "total_tokens": 2900}
        await response.write(
            b"data: " + orjson.dumps({"choices": [], "usage": usage}) + b"\n\ndata: [DONE]\n\n"
        )
        return response


async def one_round(session: aiohttp.ClientSession, proxy_url: str, upstream: PacedUpstream):
    from cc_nemo.translate.sse import SSEDecoder

    upstream.sent.clear()
    received: dict[str, float] = {}
    arguments: list[str] = []
    body = {
        "model": bodies.BENCH_ALIAS,
        "max_tokens": 8192,
        "stream": True,
        "tools": [TOOL],
        "messages": [{"role": "user", "content": "Write /tmp/bench/steps.py"}],
    }
    headers = {"Authorization": f"Bearer {run.TOKEN}"}
    decoder = SSEDecoder()
    async with session.post(f"{proxy_url}/v1/messages", json=body, headers=headers) as reply:
        reply.raise_for_status()
        async for data in reply.content.iter_any():
            now = time.perf_counter()
            for message in decoder.feed(data):
                event = orjson.loads(message.data)
                kind = event["type"]
                if kind == "content_block_start" and event["content_block"]["type"] == "tool_use":
                    received.setdefault("start", now)
                elif kind == "content_block_delta" and event["delta"]["type"] == "input_json_delta":
                    received.setdefault("first", now)
                    received["last"] = now
                    arguments.append(event["delta"]["partial_json"])
                elif kind == "content_block_stop" and "first" in received:
                    received.setdefault("stop", now)
    if orjson.loads("".join(arguments)) != orjson.loads("".join(upstream.fragments)):
        raise SystemExit("bench: the tool input the client assembled is not the one sent")
    sent = upstream.sent
    return Round(
        block_start_ms=(received["start"] - sent["name"]) * 1000,
        first_input_ms=(received["first"] - sent["first"]) * 1000,
        last_input_ms=(received["last"] - sent["last"]) * 1000,
        block_stop_ms=(received["stop"] - sent["end"]) * 1000,
        stream_s=sent["last"] - sent["name"],
    )


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    upstream = PacedUpstream(pieces(file_arguments(), args.fragments), args.interval_ms / 1000)
    app = web.Application()
    app.router.add_post("/{tail:.*}", upstream.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory(prefix="cc-proxy-tool-ttft-") as tmp:
        workdir = Path(tmp)
        env = run.proxy_env(workdir, f"http://127.0.0.1:{port}")
        source = str(Path(args.source or Path(__file__).resolve().parent.parent).resolve())
        env["PYTHONPATH"] = source
        log_path = workdir / "proxy.stderr"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", BOOT, "serve", bodies.BENCH_ALIAS, "--quiet",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=log_path.open("wb"),
            cwd=workdir,  # with -c, the working directory comes first on sys.path
        )  # fmt: skip
        child = run.Child("cc-proxy serve", process)
        try:
            url = await run._read_line_with(child, "export ANTHROPIC_BASE_URL=", log_path)
            proxy_url = url.strip("'\"")
            rounds = []
            async with aiohttp.ClientSession() as session:
                await one_round(session, proxy_url, upstream)  # warm-up, not counted
                for _ in range(args.rounds):
                    rounds.append(await one_round(session, proxy_url, upstream))
        finally:
            await child.stop()
            await runner.cleanup()
    return {
        "source": source,
        "fragments": len(upstream.fragments),
        "interval_ms": args.interval_ms,
        "argument_chars": len("".join(upstream.fragments)),
        "rounds": [asdict(r) for r in rounds],
    }


def report(result: dict[str, Any]) -> None:
    rounds = result["rounds"]
    print(
        f"cc-proxy from {result['source']}: a Write of {result['argument_chars']} argument "
        f"characters in {result['fragments']} fragments {result['interval_ms']} ms apart "
        f"(stream {statistics.median(r['stream_s'] for r in rounds):.2f} s), "
        f"{len(rounds)} rounds"
    )
    print(f"{'':14}{'median ms':>12}{'worst ms':>12}")
    for key, label in (
        ("block_start_ms", "block start"),
        ("first_input_ms", "first input"),
        ("last_input_ms", "last input"),
        ("block_stop_ms", "block stop"),
    ):
        values = [r[key] for r in rounds]
        print(f"{label:14}{statistics.median(values):>12.1f}{max(values):>12.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fragments", type=int, default=400)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--source", help="run the proxy from this source tree (holds cc_nemo/)")
    parser.add_argument("--json", type=Path, help="also write the rounds here")
    args = parser.parse_args()
    if args.fragments < 1 or args.rounds < 1 or args.interval_ms < 0:
        parser.error("--fragments and --rounds must be at least 1, --interval-ms at least 0")
    if args.source is not None and not (Path(args.source) / "cc_nemo").is_dir():
        parser.error(f"--source {args.source}: no cc_nemo/ there")
    result = asyncio.run(measure(args))
    report(result)
    if args.json is not None:
        args.json.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        main()
