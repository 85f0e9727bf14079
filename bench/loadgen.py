"""The load client: sends one body many times at a fixed concurrency, bounded in count and time,
and timestamps the first content delta and the end of each answer.

The SSE parse is deliberately minimal (a byte search until the first content delta, then only
counting bytes), so the client costs little and the same on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
import orjson

Protocol = Literal["anthropic", "openai"]
REQUEST_TIMEOUT_S = 120.0
# The first Anthropic text/thinking/tool delta; the first OpenAI delta that carries content.
_FIRST_DELTA = {
    "anthropic": re.compile(rb"event: content_block_delta\n"),
    "openai": re.compile(rb'"(?:content|reasoning_content|reasoning)":"[^"]|"tool_calls":\['),
}
_STREAM_END = {"anthropic": b"event: message_stop", "openai": b"data: [DONE]"}
_TAIL_BYTES = 64


@dataclass(frozen=True)
class Target:
    """Where to send what: the proxy (Anthropic) or the mock directly (OpenAI)."""

    side: str
    url: str
    body: bytes
    headers: dict[str, str]
    protocol: Protocol
    stream: bool


@dataclass
class Sample:
    ttft_s: float | None
    total_s: float
    ok: bool
    error: str | None = None


@dataclass
class RunResult:
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def ok_samples(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]


def make_session(concurrency: int) -> aiohttp.ClientSession:
    """Keep-alive connections, one per concurrent request, never through an HTTP proxy."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, force_close=False),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        trust_env=False,
        auto_decompress=False,
    )


async def one_request(session: aiohttp.ClientSession, target: Target) -> Sample:
    """Send the body once; time the first content delta (streams) and the complete answer."""
    first_delta = _FIRST_DELTA[target.protocol]
    started = time.perf_counter()
    ttft: float | None = None
    try:
        async with session.post(target.url, data=target.body, headers=target.headers) as resp:
            if resp.status != 200:
                detail = (await resp.read())[:200].decode("utf-8", "replace")
                return Sample(None, time.perf_counter() - started, False, f"{resp.status} {detail}")
            if not target.stream:
                body = await resp.read()
                total = time.perf_counter() - started
                ok = body.startswith(b"{") and body.rstrip().endswith(b"}")
                return Sample(None, total, ok, None if ok else "truncated JSON body")
            seen = b""
            tail = b""
            async for data in resp.content.iter_any():
                if ttft is None:
                    seen += data
                    if first_delta.search(seen):
                        ttft = time.perf_counter() - started
                        seen = b""
                tail = (tail + data)[-_TAIL_BYTES:]
            total = time.perf_counter() - started
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return Sample(None, time.perf_counter() - started, False, f"{type(exc).__name__}: {exc}")
    complete = _STREAM_END[target.protocol] in tail
    if ttft is None or not complete:
        return Sample(ttft, total, False, "no content delta" if ttft is None else "stream cut")
    return Sample(ttft, total, True)


async def run_load(
    target: Target,
    *,
    concurrency: int,
    requests: int,
    max_seconds: float,
    on_measure_start: Callable[[], None] = lambda: None,
) -> RunResult:
    """One warm-up request per connection, then up to `requests` timed requests from
    `concurrency` workers; no new request starts after `max_seconds`.

    The workers' first requests are spread evenly over one request's duration, as independent
    sessions would be; all started at once they stay in lockstep, and every round of
    requests queues behind itself on either side."""
    result = RunResult()
    async with make_session(concurrency) as session:
        warm = await asyncio.gather(*(one_request(session, target) for _ in range(concurrency)))
        result.errors += [s.error or "" for s in warm if not s.ok]
        if result.errors:
            return result
        spread = statistics.median(s.total_s for s in warm) / concurrency
        on_measure_start()
        remaining = requests
        started = time.perf_counter()
        deadline = started + max_seconds

        async def worker(position: int) -> None:
            nonlocal remaining
            await asyncio.sleep(position * spread)
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                sample = await one_request(session, target)
                result.samples.append(sample)
                if not sample.ok:
                    result.errors.append(sample.error or "")

        await asyncio.gather(*(worker(position) for position in range(concurrency)))
        result.wall_s = time.perf_counter() - started
    return result


@dataclass(frozen=True)
class Answer:
    """What one answer said: its text and the tools it called."""

    text: str
    tools: tuple[str, ...]


async def fetch_answer(target: Target) -> Answer:
    """Send the body once and fully parse the answer (to check both sides say the same)."""
    async with (
        make_session(1) as session,
        session.post(target.url, data=target.body, headers=target.headers) as resp,
    ):
        raw = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{target.side}: HTTP {resp.status}: {raw[:300]!r}")
    if not target.stream:
        return _answer_from_json(orjson.loads(raw), target.protocol)
    texts: list[str] = []
    tools: list[str] = []
    for line in raw.split(b"\n"):
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        event = orjson.loads(line[6:])
        if target.protocol == "anthropic":
            kind = event.get("type")
            if kind == "content_block_delta" and event["delta"].get("type") == "text_delta":
                texts.append(event["delta"]["text"])
            elif kind == "content_block_start" and event["content_block"]["type"] == "tool_use":
                tools.append(event["content_block"]["name"])
            elif kind == "error":
                raise RuntimeError(f"{target.side}: stream error {event}")
        else:
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                texts.append(delta.get("content") or "")
                for call in delta.get("tool_calls") or []:
                    with contextlib.suppress(KeyError, TypeError):
                        if call["function"]["name"]:
                            tools.append(call["function"]["name"])
    return Answer("".join(texts), tuple(tools))


def _answer_from_json(body: dict, protocol: Protocol) -> Answer:
    if protocol == "anthropic":
        blocks = body.get("content") or []
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        tools = tuple(b["name"] for b in blocks if b.get("type") == "tool_use")
        return Answer(text, tools)
    message = body["choices"][0]["message"]
    calls = message.get("tool_calls") or []
    return Answer(message.get("content") or "", tuple(c["function"]["name"] for c in calls))
