"""Slow and stalled clients must not cost other clients time, nor the proxy unbounded memory.

The proxy runs in this process (tests.fixtures), behind the fake upstream; the clients are raw
asyncio/aiohttp connections on 127.0.0.1. Counts and durations are bounded: the whole file takes
a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.fake_upstream import FakeUpstream, Reply, chunk, text_stream, usage_block
from tests.fixtures import MakeProxy, ProxyUnderTest
from tests.waiting import eventually

REQUEST = {
    "model": "claude-sonnet-5",
    "max_tokens": 200,
    "messages": [{"role": "user", "content": "hi"}],
}
STREAM_REQUEST = {**REQUEST, "stream": True}

# A normal request must come back within this while the slow clients are connected. Measured:
# 5-15 ms with them connected (2-core machine); the margin is for loaded CI machines.
NORMAL_REQUEST_BUDGET_S = 2.0


def rss_bytes() -> int:
    """This process's resident set size (VmRSS): the proxy and the fake upstream run in it."""
    status = Path("/proc/self/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.MULTILINE)
    assert match, "no VmRSS in /proc/self/status"
    return int(match.group(1)) * 1024


async def normal_request(proxy: ProxyUnderTest) -> float:
    """A complete non-streaming request; returns how long it took."""
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/messages", json=REQUEST, headers=proxy.auth_headers()
        ) as response,
    ):
        body = await response.json()
    assert response.status == 200, body
    assert body["content"][0]["text"] == "echo: hi"
    return time.monotonic() - started


def request_head(proxy: ProxyUnderTest, body: bytes) -> bytes:
    host = proxy.url.removeprefix("http://")
    return (
        f"POST /v1/messages HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {proxy.token}\r\nContent-Type: application/json\r\n"
        f"anthropic-version: 2023-06-01\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()


class Trickler:
    """A client that sends its request head one byte at a time, and never finishes it."""

    INTERVAL_S = 0.1

    def __init__(self, port: int, head: bytes) -> None:
        self.port = port
        self.head = head
        self.sent = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def run(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        # Stop one byte short of the blank line that ends the head: the request never starts.
        for byte in self.head[:-1]:
            self.writer.write(bytes([byte]))
            await self.writer.drain()
            self.sent += 1
            await asyncio.sleep(self.INTERVAL_S)

    @property
    def still_open(self) -> bool:
        return (
            self.reader is not None
            and self.writer is not None
            and not self.reader.at_eof()
            and not self.writer.is_closing()
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@pytest.fixture
async def tricklers(proxy: ProxyUnderTest) -> AsyncIterator[list[Trickler]]:
    head = request_head(proxy, orjson.dumps(REQUEST))
    clients = [Trickler(proxy.running.port, head) for _ in range(200)]
    tasks = [asyncio.ensure_future(client.run()) for client in clients]
    try:
        yield clients
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            client.close()


async def test_clients_trickling_their_headers_do_not_delay_a_normal_request(
    proxy: ProxyUnderTest, tricklers: list[Trickler]
) -> None:
    # Every one of them is connected and has been feeding the proxy for a while.
    await eventually(lambda: all(t.sent >= 3 for t in tricklers), 20, what="200 trickling clients")

    took = await normal_request(proxy)

    assert took < NORMAL_REQUEST_BUDGET_S
    open_ = sum(t.still_open for t in tricklers)
    assert open_ == len(tricklers), f"only {open_} trickling clients were still connected"


# ---- clients that stop reading --------------------------------------------------------------

STALLED_CLIENTS = 20
# A long answer: 2,048 chunks of 16 kB, 32 MB per client (the same chunk object repeated, so it
# costs this process nothing), far more than the socket buffers between the fake, the proxy and
# a client that has stopped reading can hold: measured, the fake stalls after 8.6-13.8 MB.
PIECE = chunk({"role": "assistant", "content": "0123456789abcdef" * 1024}, usage=usage_block(20, 1))
LONG_ANSWER = [PIECE] * 2048 + [chunk({}, finish_reason="stop", usage=usage_block(20, 2))]
# Measured: the RSS grows by 57 MB with 20 stalled streams, under 3 MB each (tracemalloc: the
# batch the proxy last read from the upstream socket, up to 0.5 MB, held as read, parsed and
# translated, plus the one write of it that waits in the transport buffer; and this test's own
# unread 140 kB per client). That does not grow with the answer; holding what the clients do
# not read would be up to 20 x 32 MB (a proxy that ignores backpressure: 750 MB when tried).
MEMORY_GROWTH_BOUND = 100 * 2**20


def free_heap_rss() -> int:
    """The RSS once freed memory has gone back to the system: live memory, not high water."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_bytes()


async def stalled_stream(proxy: ProxyUnderTest) -> asyncio.StreamWriter:
    """A streaming request whose answer is never read (a small receive buffer, so the kernel
    does not read on its behalf)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect(("127.0.0.1", proxy.running.port))
    sock.setblocking(False)
    _, writer = await asyncio.open_connection(sock=sock)
    body = orjson.dumps(STREAM_REQUEST)
    writer.write(request_head(proxy, body) + body)
    await writer.drain()
    return writer


async def stalled_or_too_big(fake: FakeUpstream, before: int) -> bool:
    """Whether the fake has stopped writing the long answers (no stream grew across three polls
    0.1 s apart: its writes wait for the proxy, which waits for its clients), or the memory has
    already grown past the bound (no need to wait for the proxy to hold a gigabyte)."""
    if free_heap_rss() - before > MEMORY_GROWTH_BOUND:
        return True
    answers = [r for r in fake.requests if r.body and r.body.get("stream")]
    if len(answers) < STALLED_CLIENTS or not all(r.sent for r in answers):
        return False
    progress = [r.sent for r in answers]
    for _ in range(3):
        await asyncio.sleep(0.1)
        if [r.sent for r in answers] != progress:
            return False
    return True


async def test_clients_that_stop_reading_cost_bounded_memory_and_no_service(
    proxy: ProxyUnderTest,
) -> None:
    await normal_request(proxy)  # warm up: first-request allocations are not the clients' cost
    before = free_heap_rss()
    proxy.fake.enqueue(*[Reply.stream(LONG_ANSWER)] * STALLED_CLIENTS)
    clients = [await stalled_stream(proxy) for _ in range(STALLED_CLIENTS)]
    try:
        await eventually(lambda: stalled_or_too_big(proxy.fake, before), 15)
        grown = free_heap_rss() - before

        took = await normal_request(proxy)
    finally:
        for writer in clients:
            writer.close()

    assert grown < MEMORY_GROWTH_BOUND, f"RSS grew by {grown / 2**20:.1f} MB"
    streamed = [r for r in proxy.fake.requests if r.body.get("stream")]
    assert not any(r.finished for r in streamed), "a client that reads nothing got everything"
    assert took < NORMAL_REQUEST_BUDGET_S


# ---- clients that go away --------------------------------------------------------------------

# Measured: the fake sees the cancellation within 1 ms of the client hanging up.
CANCEL_BUDGET_S = 0.5
# The upstream answers slowly enough that the client leaves long before it would finish.
SLOW_STREAM = Reply.stream(text_stream("a b c d e f g h i j", pieces=10), chunk_delay=0.5)

Leave = Callable[[ProxyUnderTest], Awaitable[None]]


async def leave_before_the_answer(proxy: ProxyUnderTest) -> None:
    """Give up while the upstream has not answered (the proxy has committed to nothing)."""
    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(
            session.post(f"{proxy.url}/v1/messages", json=REQUEST, headers=proxy.auth_headers())
        )
        assert await proxy.fake.wait_for(lambda f: bool(f.requests), timeout=5)
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)


def leave_after(marker: bytes) -> Leave:
    """Read the streamed answer up to the first event holding `marker`, then hang up."""

    async def leave(proxy: ProxyUnderTest) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{proxy.url}/v1/messages", json=STREAM_REQUEST, headers=proxy.auth_headers()
            ) as response,
        ):
            assert response.status == 200
            while marker not in await response.content.readuntil(b"\n\n"):
                pass
            response.close()

    return leave


@pytest.mark.parametrize(
    ("settings", "reply", "leave"),
    [
        ({}, Reply.hang(30), leave_before_the_answer),
        ({"ping_interval": 0.2, "commit_timeout": 0.1}, Reply.hang(30), leave_after(b"event: message_start")),
        ({}, SLOW_STREAM, leave_after(b"text_delta")),
    ],
    ids=["before-commit", "during-pings", "mid-stream"],
)  # fmt: skip
async def test_a_client_that_goes_away_closes_the_upstream_request_quickly(
    make_proxy: MakeProxy, settings: dict[str, float], reply: Reply, leave: Leave
) -> None:
    proxy = await make_proxy(**settings)
    proxy.fake.enqueue(reply)
    await leave(proxy)
    gone_at = time.monotonic()
    await proxy.fake.wait_for(lambda f: f.requests[-1].cancelled, timeout=5)
    seen_after = time.monotonic() - gone_at

    [upstream_request] = proxy.fake.requests
    assert upstream_request.cancelled, "the upstream request was never closed"
    assert not upstream_request.finished
    assert seen_after < CANCEL_BUDGET_S
    [record] = await eventually(lambda: proxy.ledger.records, 5, what="the ledger record")
    assert (record.status, record.error_type) == (499, "client_closed")
