"""Stream timing: early message_start, pings, concurrency, client disconnects."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import aiohttp
import orjson

from cc_nemo.translate.sse import SSEDecoder
from tests.fake_upstream import FakeUpstream, Reply, chunk, text_stream, usage_block
from tests.fixtures import MakeProxy, ProxyUnderTest

REQUEST = {
    "model": "claude-sonnet-5",
    "max_tokens": 200,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}


async def timed_events(proxy: ProxyUnderTest, payload: dict[str, Any] = REQUEST) -> list[tuple]:
    """(seconds since the request, event name, payload) for every SSE event received."""
    started = time.monotonic()
    events: list[tuple] = []
    decoder = SSEDecoder()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/messages?beta=true", json=payload, headers=proxy.auth_headers()
        ) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["request-id"].startswith("req_")
        async for data in response.content.iter_any():
            for message in decoder.feed(data):
                events.append(
                    (time.monotonic() - started, message.event, orjson.loads(message.data))
                )
    return events


async def test_message_start_and_pings_flow_while_the_upstream_thinks(
    make_proxy: MakeProxy,
) -> None:
    proxy = await make_proxy(ping_interval=0.2, commit_timeout=0.3)
    proxy.fake.enqueue(Reply.stream(text_stream("finally"), delay=1.8))
    events = await timed_events(proxy)
    names = [name for _, name, _ in events]
    assert names[0] == "message_start"
    start_time = events[0][0]
    assert start_time < 1.0, "message_start must not wait past the commit deadline"
    first_content = names.index("content_block_start")
    pings = [t for t, name, _ in events[:first_content] if name == "ping"]
    assert len(pings) >= 2
    assert all(later - earlier < 0.5 for earlier, later in itertools.pairwise(pings))
    assert names[-1] == "message_stop"
    text = "".join(p["delta"]["text"] for _, name, p in events if name == "content_block_delta")
    assert text == "finally"


async def test_fast_upstream_needs_no_ping(proxy: ProxyUnderTest) -> None:
    proxy.fake.enqueue(Reply.stream(text_stream("quick")))
    events = await timed_events(proxy)
    names = [name for _, name, _ in events]
    assert "ping" not in names
    assert names[0] == "message_start" and names[-1] == "message_stop"


async def test_pings_continue_while_tool_arguments_are_buffered(make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(ping_interval=0.2, commit_timeout=0.1)
    fragments = ['{"command": "', "echo ", "one ", "two ", "three ", "four", '"}']
    chunks = [
        chunk(
            {"tool_calls": [{"id": "call_1", "index": 0, "type": "function",
                             "function": {"name": "Bash", "arguments": ""}}]},
            usage=usage_block(10, 1),
        ),
        *[
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]},
                  usage=usage_block(10, 2 + i))
            for i, part in enumerate(fragments)
        ],
        chunk({}, finish_reason="tool_calls", usage=usage_block(10, 12)),
    ]  # fmt: skip
    proxy.fake.enqueue(Reply.stream(chunks, chunk_delay=0.12))
    payload = {
        **REQUEST,
        "tools": [{"name": "Bash", "input_schema": {"type": "object", "properties": {}}}],
    }
    events = await timed_events(proxy, payload)
    names = [name for _, name, _ in events]
    first_block = names.index("content_block_start")
    assert names[:first_block].count("ping") >= 2
    arguments = "".join(
        p["delta"]["partial_json"]
        for _, name, p in events
        if name == "content_block_delta" and p["delta"]["type"] == "input_json_delta"
    )
    assert orjson.loads(arguments) == {"command": "echo one two three four"}


async def test_fifty_concurrent_streams_do_not_cross_talk(proxy: ProxyUnderTest) -> None:
    async def one(client: Any, n: int) -> tuple[str, str]:
        prompt = f"request number {n} " + "x" * (n + 1)
        async with client.messages.stream(
            model="claude-sonnet-5",
            max_tokens=100,
            messages=[{"role": "user", "content": prompt}],
        ) as stream:
            return prompt, "".join([piece async for piece in stream.text_stream])

    async with proxy.client() as client:
        results = await asyncio.gather(*(one(client, n) for n in range(50)))
    for prompt, text in results:
        assert text == f"echo: {prompt}"
    assert len(proxy.fake.requests) == 50
    assert len(proxy.ledger.records) == 50
    assert not any(record.failed for record in proxy.ledger.records)


async def _cancelled(fake: FakeUpstream, timeout: float) -> bool:
    return await fake.wait_for(
        lambda f: bool(f.requests) and f.requests[-1].cancelled, timeout=timeout
    )


async def test_client_disconnect_before_commit_cancels_the_upstream(
    proxy: ProxyUnderTest,
) -> None:
    proxy.fake.enqueue(Reply.hang(30))
    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(
            session.post(f"{proxy.url}/v1/messages", json=REQUEST, headers=proxy.auth_headers())
        )
        assert await proxy.fake.wait_for(lambda f: bool(f.requests), timeout=2)
        request.cancel()
        gone_at = time.monotonic()
        assert await _cancelled(proxy.fake, timeout=1.0)
    assert time.monotonic() - gone_at < 1.0
    assert await _ledger_has_record(proxy)
    assert proxy.ledger.records[-1].status == 499


async def test_client_disconnect_during_pings_cancels_the_upstream(make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(ping_interval=0.2, commit_timeout=0.1)
    proxy.fake.enqueue(Reply.hang(30))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/messages", json=REQUEST, headers=proxy.auth_headers()
        ) as response,
    ):
        assert response.status == 200
        first = await response.content.readuntil(b"\n\n")
        assert first.startswith(b"event: message_start")
        response.close()
    gone_at = time.monotonic()
    assert await _cancelled(proxy.fake, timeout=1.0)
    assert time.monotonic() - gone_at < 1.0


async def test_client_disconnect_mid_stream_cancels_the_upstream(proxy: ProxyUnderTest) -> None:
    proxy.fake.enqueue(Reply.stream(text_stream("a b c d e f g h i j", pieces=10), chunk_delay=0.5))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/messages", json=REQUEST, headers=proxy.auth_headers()
        ) as response,
    ):
        while b"text_delta" not in await response.content.readuntil(b"\n\n"):
            pass
        response.close()
    gone_at = time.monotonic()
    assert await _cancelled(proxy.fake, timeout=1.0)
    assert time.monotonic() - gone_at < 1.0
    assert not proxy.fake.requests[-1].finished


async def _ledger_has_record(proxy: ProxyUnderTest) -> bool:
    for _ in range(100):
        if proxy.ledger.records:
            return True
        await asyncio.sleep(0.01)
    return False
