"""The upstream client honours HTTP(S)_PROXY and NO_PROXY, read once when it is created."""

from __future__ import annotations

import socket

import pytest
from aiohttp import web

from cc_nemo.proxy.upstream import (
    UpstreamClient,
    UpstreamConnectError,
    create_session,
    env_proxy_for,
)


def _closed_port() -> int:
    """A loopback port nothing listens on: a direct request to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def forward_proxy(aiohttp_server) -> tuple[str, list[str]]:
    """An HTTP forward proxy that answers every request itself and records the target URL."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(str(request.url))
        return web.json_response({"via": "proxy"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}", seen


def _client(url: str) -> UpstreamClient:
    return UpstreamClient(
        create_session(connect_timeout=5),
        url=url,
        headers={},
        first_byte_timeout=5,
        read_timeout=5,
    )


async def test_requests_go_through_the_http_proxy_the_environment_names(
    forward_proxy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy_url, seen = forward_proxy
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    target = f"http://127.0.0.1:{_closed_port()}/v1/chat/completions"
    client = _client(target)
    try:
        reply = await client.post(b"{}", headers={"Content-Type": "application/json"})
        assert reply.status == 200
        assert await reply.read() == b'{"via": "proxy"}'
        reply.close()
    finally:
        await client._session.close()
    assert seen == [target]


async def test_no_proxy_sends_requests_direct(
    forward_proxy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy_url, seen = forward_proxy
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = _client(f"http://127.0.0.1:{_closed_port()}/v1/chat/completions")
    try:
        with pytest.raises(UpstreamConnectError):
            await client.post(b"{}", headers={})
    finally:
        await client._session.close()
    assert seen == []


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({}, "https://gateway.example/v1/a/g", None),
        (
            {"HTTPS_PROXY": "http://proxy.local:3128"},
            "https://gateway.example/v1",
            "http://proxy.local:3128",
        ),
        ({"HTTPS_PROXY": "http://proxy.local:3128"}, "http://plain.example/v1", None),
        (
            {"HTTP_PROXY": "http://proxy.local:8080"},
            "http://plain.example/v1",
            "http://proxy.local:8080",
        ),
        (
            {"HTTPS_PROXY": "http://proxy.local:3128", "NO_PROXY": "gateway.example"},
            "https://gateway.example/v1",
            None,
        ),
    ],
)
def test_env_proxy_is_chosen_by_scheme_and_no_proxy(
    env: dict[str, str], url: str, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    proxy, _auth = env_proxy_for(url)
    assert proxy == expected
