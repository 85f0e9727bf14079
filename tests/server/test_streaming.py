"""Stream timing: early message_start, pings, concurrency. (Clients that go away or stop
reading: test_slow_clients.py.)"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from cc_nemo.translate.sse import SSEDecoder
from tests.fake_upstream import Reply, chunk, text_stream, usage_block
from tests.fixtures import MakeProxy, ProxyUnderTest, proxy_settings

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


async def test_tool_arguments_reach_the_client_while_the_upstream_is_still_writing_them(
    tmp_path: Path,
) -> None:
    # The upstream sends the call's name and the first argument fragment, then holds the rest
    # until the client has seen the tool_use block and its first input: a proxy that buffered
    # tool calls until the upstream ended would never get there (docs/wire.md, "How tool-call
    # arguments stream").
    from cc_nemo.proxy.app import start_proxy
    from cc_nemo.proxy.usage import UsageLedger

    client_saw_input = asyncio.Event()
    first = {"id": "call_1", "index": 0, "type": "function",
             "function": {"name": "Bash", "arguments": '{"command": "echo '}}  # fmt: skip
    rest = ["one ", "two", '"}']

    async def upstream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(payload: dict[str, Any]) -> None:
            await response.write(b"data: " + orjson.dumps(payload) + b"\n\n")

        await send(chunk({"tool_calls": [first]}, usage=usage_block(10, 1)))
        await client_saw_input.wait()
        for part in rest:
            await send(chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
        await send(chunk({}, finish_reason="tool_calls", usage=usage_block(10, 8)))
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/{tail:.*}", upstream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    settings = proxy_settings(f"http://127.0.0.1:{port}", log_file=tmp_path / "proxy.log")
    running = await start_proxy(settings, ledger=UsageLedger())
    payload = {
        **REQUEST,
        "tools": [{"name": "Bash", "input_schema": {"type": "object", "properties": {}}}],
    }
    events: list[tuple[str, dict]] = []

    async def read() -> None:
        decoder = SSEDecoder()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{running.url}/v1/messages?beta=true",
                json=payload,
                headers={"Authorization": f"Bearer {settings.session_token}"},
            ) as response,
        ):
            assert response.status == 200
            async for data in response.content.iter_any():
                for message in decoder.feed(data):
                    event = orjson.loads(message.data)
                    events.append((message.event, event))
                    if event.get("delta", {}).get("type") == "input_json_delta":
                        client_saw_input.set()

    try:
        await asyncio.wait_for(read(), timeout=10)
    finally:
        await running.stop()
        await runner.cleanup()
    names = [name for name, _ in events]
    start = events[names.index("content_block_start")][1]["content_block"]
    assert start["type"] == "tool_use" and start["name"] == "Bash"
    pieces = [
        event["delta"]["partial_json"]
        for name, event in events
        if name == "content_block_delta" and event["delta"]["type"] == "input_json_delta"
    ]
    assert pieces[0] == '{"command":"echo'  # its trailing space waits for more of the string
    assert orjson.loads("".join(pieces)) == {"command": "echo one two"}
    assert names[-2:] == ["message_delta", "message_stop"]


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
