"""Stream timing: early message_start, pings, concurrency. (Clients that go away or stop
reading: test_slow_clients.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
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


async def test_a_steady_stream_longer_than_the_ping_and_read_budgets_arrives_whole(
    make_proxy: MakeProxy,
) -> None:
    """Chunks every 20 ms for ~0.8 s, past several ping intervals and read timeouts counted
    from the first read: the deadline moves with every chunk (the read's timer fires early
    and is re-armed), so no ping, no timeout, every piece in order."""
    proxy = await make_proxy(ping_interval=0.1, read_timeout=0.15)
    words = [f"w{n} " for n in range(40)]
    proxy.fake.enqueue(Reply.stream(text_stream("".join(words), pieces=40), chunk_delay=0.02))
    events = await timed_events(proxy)
    names = [name for _, name, _ in events]
    assert "ping" not in names and "error" not in names
    assert names[-1] == "message_stop"
    assert events[-1][0] > 0.5  # it really lasted several budgets
    text = "".join(p["delta"]["text"] for _, name, p in events if name == "content_block_delta")
    assert text == "".join(words)


# Writes one upstream chunk (`data: <json>`), or b"[DONE]".
SendChunk = Callable[[dict[str, Any] | bytes], Awaitable[None]]
TOOL_REQUEST = {
    **REQUEST,
    "tools": [{"name": "Bash", "input_schema": {"type": "object", "properties": {}}}],
}


@contextlib.asynccontextmanager
async def proxy_before(
    tmp_path: Path, stream: Callable[[web.Request, SendChunk], Awaitable[None]], **settings: Any
) -> AsyncIterator[tuple[Any, str]]:
    """A real proxy (and its session token) in front of an upstream whose stream `stream`
    writes, chunk by chunk; `settings` are ProxySettings fields."""
    from cc_nemo.proxy.app import start_proxy
    from cc_nemo.proxy.usage import UsageLedger

    async def upstream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(payload: dict[str, Any] | bytes) -> None:
            data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
            await response.write(b"data: " + data + b"\n\n")

        await stream(request, send)
        return response

    app = web.Application()
    app.router.add_post("/{tail:.*}", upstream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    settings = proxy_settings(
        f"http://127.0.0.1:{port}", log_file=tmp_path / "proxy.log", **settings
    )
    running = await start_proxy(settings, ledger=UsageLedger())
    try:
        yield running, settings.session_token
    finally:
        await running.stop()
        await runner.cleanup()


async def read_events(
    proxy: tuple[Any, str],
    on_batch: Callable[[list[tuple[str, dict]]], None],
    headers: dict[str, str] | None = None,
) -> list[tuple[str, dict]]:
    """Every SSE event of one tool request; `on_batch` sees the events after each read."""
    running, token = proxy
    events: list[tuple[str, dict]] = []
    decoder = SSEDecoder()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{running.url}/v1/messages?beta=true",
            json=TOOL_REQUEST,
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
        ) as response,
    ):
        assert response.status == 200
        async for data in response.content.iter_any():
            for message in decoder.feed(data):
                events.append((message.event, orjson.loads(message.data)))
            on_batch(events)
    return events


def input_pieces(events: list[tuple[str, dict]]) -> list[str]:
    return [
        event["delta"]["partial_json"]
        for name, event in events
        if name == "content_block_delta" and event["delta"]["type"] == "input_json_delta"
    ]


async def test_tool_arguments_reach_the_client_while_the_upstream_is_still_writing_them(
    tmp_path: Path,
) -> None:
    # The upstream sends the call's name and the first argument fragment, then holds the rest
    # until the client has seen the tool_use block and its first input: a proxy that buffered
    # tool calls until the upstream ended would never get there (docs/wire.md, "How tool-call
    # arguments stream").
    client_saw_input = asyncio.Event()
    first = {"id": "call_1", "index": 0, "type": "function",
             "function": {"name": "Bash", "arguments": '{"command": "echo '}}  # fmt: skip
    rest = ["one ", "two", '"}']

    async def stream(request: web.Request, send: SendChunk) -> None:
        await send(chunk({"tool_calls": [first]}, usage=usage_block(10, 1)))
        await client_saw_input.wait()
        for part in rest:
            await send(chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
        await send(chunk({}, finish_reason="tool_calls", usage=usage_block(10, 8)))
        await send(b"[DONE]")

    def on_batch(events: list[tuple[str, dict]]) -> None:
        if input_pieces(events):
            client_saw_input.set()

    async with proxy_before(tmp_path, stream) as proxy:
        events = await asyncio.wait_for(read_events(proxy, on_batch), timeout=10)
    names = [name for name, _ in events]
    start = events[names.index("content_block_start")][1]["content_block"]
    assert start["type"] == "tool_use" and start["name"] == "Bash"
    pieces = input_pieces(events)
    assert pieces[0] == '{"command":"echo'  # its trailing space waits for more of the string
    assert orjson.loads("".join(pieces)) == {"command": "echo one two"}
    assert names[-2:] == ["message_delta", "message_stop"]


async def test_pings_and_the_read_timeout_follow_the_last_chunk_of_a_steady_stream(
    tmp_path: Path,
) -> None:
    """Chunks every 20 ms for ~0.6 s (longer than the ping interval and the read timeout), then
    silence: the pings and then the timeout count from the last chunk, not from the first
    read (the read's timer, armed early, must be moved on, not forgotten)."""
    words = [f"w{n} " for n in range(30)]

    async def stream(request: web.Request, send: SendChunk) -> None:
        for word in words:
            await send(chunk({"content": word}))
            await asyncio.sleep(0.02)
        await asyncio.sleep(2)  # silent far past the read timeout
        await send(b"[DONE]")

    timeline: list[float] = []
    started = time.monotonic()

    def on_batch(events: list[tuple[str, dict]]) -> None:
        timeline.extend([time.monotonic() - started] * (len(events) - len(timeline)))

    async with proxy_before(tmp_path, stream, ping_interval=0.1, read_timeout=0.4) as proxy:
        events = await asyncio.wait_for(read_events(proxy, on_batch), timeout=4)
    names = [name for name, _ in events]
    text = "".join(e["delta"].get("text", "") for n, e in events if n == "content_block_delta")
    assert text == "".join(words)
    last_text = max(i for i, name in enumerate(names) if name == "content_block_delta")
    assert timeline[last_text] > 0.5  # the steady part outlasted both budgets
    assert names[last_text + 1 :].count("ping") >= 2
    assert names[-1] == "error" and "timed out" in events[-1][1]["error"]["message"]
    assert timeline[-1] - timeline[last_text] < 1.5


@pytest.mark.parametrize("ending", ["finish", "drop"])
async def test_a_complete_tool_call_stops_only_when_the_upstream_has_finished(
    tmp_path: Path, ending: str
) -> None:
    # Claude Code runs a tool_use block as soon as it stops; if the stream then failed, it
    # would re-send the turn and the tool would run twice (docs/wire.md, "Why a tool block
    # stops only at the end"). The upstream sends a complete call, waits until the client has
    # all of its input, then finishes or drops the connection.
    client_has_input = asyncio.Event()
    upstream_ended = asyncio.Event()
    call = {"id": "call_1", "index": 0, "type": "function",
            "function": {"name": "Bash", "arguments": '{"command": "echo ran"}'}}  # fmt: skip
    stops_seen_before_the_end: list[dict] = []

    async def stream(request: web.Request, send: SendChunk) -> None:
        await send(chunk({"tool_calls": [call]}, usage=usage_block(10, 5)))
        await client_has_input.wait()
        upstream_ended.set()
        if ending == "drop":
            assert request.transport is not None
            request.transport.abort()
            return
        await send(chunk({}, finish_reason="tool_calls", usage=usage_block(10, 8)))
        await send(b"[DONE]")

    def on_batch(events: list[tuple[str, dict]]) -> None:
        if not upstream_ended.is_set():
            stops_seen_before_the_end.extend(e for n, e in events if n == "content_block_stop")
        if "".join(input_pieces(events)) == '{"command":"echo ran"}':
            client_has_input.set()

    async with proxy_before(tmp_path, stream) as proxy:
        events = await asyncio.wait_for(
            read_events(proxy, on_batch, headers={"x-app": "cli"}), timeout=10
        )
    names = [name for name, _ in events]
    assert client_has_input.is_set()
    assert stops_seen_before_the_end == []
    if ending == "finish":
        assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
        assert names.count("content_block_stop") == 1
    else:
        # Claude Code's early end (it re-sends the turn): the block never stopped.
        assert "content_block_stop" not in names and "message_stop" not in names
        assert names[-1] == "content_block_delta"


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
