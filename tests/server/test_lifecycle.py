"""Starting and stopping the proxy; the catch-all error guard; the standalone fake upstream."""

from __future__ import annotations

import asyncio
import socket
import sys
import time

import aiohttp
import orjson
import pytest
from aiohttp import web

from cc_nemo.errors import UserError
from cc_nemo.proxy.app import create_app, start_proxy
from tests.fake_upstream import Reply
from tests.fixtures import SESSION_TOKEN, ProxyUnderTest, proxy_settings

REQUEST = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
AUTH = {"Authorization": f"Bearer {SESSION_TOKEN}"}


async def test_serves_on_a_socket_the_launcher_bound_first(proxy: ProxyUnderTest) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    running = await start_proxy(proxy.settings, sock=sock)
    try:
        assert (running.url, running.port) == (f"http://127.0.0.1:{port}", port)
        async with aiohttp.ClientSession() as session, session.head(running.url) as response:
            assert response.status == 200
    finally:
        await running.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::"])
async def test_refuses_to_listen_beyond_loopback_unless_allowed(host: str) -> None:
    settings = proxy_settings("http://127.0.0.1:9")
    with pytest.raises(UserError, match=r"127\.0\.0\.1"):
        await start_proxy(settings, host=host)


async def test_stop_closes_the_port_and_cancels_in_flight_upstream_requests(
    proxy: ProxyUnderTest,
) -> None:
    proxy.fake.enqueue(Reply.hang(30))
    async with aiohttp.ClientSession() as session:
        pending = asyncio.ensure_future(
            session.post(f"{proxy.url}/v1/messages", json=REQUEST, headers=AUTH)
        )
        assert await proxy.fake.wait_for(lambda f: bool(f.requests), timeout=2)
        started = time.monotonic()
        await proxy.running.stop()
        assert time.monotonic() - started < 3
        assert await proxy.fake.wait_for(lambda f: f.requests[-1].cancelled, timeout=1)
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", proxy.running.port))


async def test_unexpected_errors_become_a_500_without_details(proxy: ProxyUnderTest) -> None:
    app = create_app(proxy.settings)

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError(f"secret detail {SESSION_TOKEN}")

    app.router.add_get("/v1/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/v1/broken", headers=AUTH) as response,
        ):
            text = await response.text()
            assert response.status == 500
            assert response.headers["request-id"].startswith("req_")
    finally:
        await runner.cleanup()
    body = orjson.loads(text)
    assert body["error"]["type"] == "api_error"
    assert "Traceback" not in text and "secret detail" not in text and SESSION_TOKEN not in text


async def test_fake_upstream_runs_standalone_with_a_script() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fake_upstream", "--port", "0", "--script", "capacity-once",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.split()[-1]
        body = {"model": "m", "messages": [{"role": "user", "content": "RUN_BASH: ls"}],
                "tools": [{"type": "function", "function": {"name": "Bash"}}]}  # fmt: skip
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/compat/chat/completions", json=body) as first:
                assert first.status == 429
                assert (await first.json())["errors"][0]["code"] == 3040
            async with session.post(f"{url}/compat/chat/completions", json=body) as second:
                reply = await second.json()
            call = reply["choices"][0]["message"]["tool_calls"][0]["function"]
            assert call == {
                "name": "Bash",
                "arguments": {"command": "ls", "description": "Run the requested command"},
            }
            async with session.get(f"{url}/_fake/requests") as listing:
                recorded = await listing.json()
        assert [r["body"]["messages"] for r in recorded] == [body["messages"]] * 2
    finally:
        process.terminate()
        await process.wait()
