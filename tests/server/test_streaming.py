"""Stream timing: early message_start, pings, concurrency. (Clients that go away or stop
reading: test_slow_clients.py.)"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import aiohttp
import orjson

from cc_nemo.translate.sse import SSEDecoder
from tests.fake_upstream import Reply, chunk, text_stream, usage_block
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
