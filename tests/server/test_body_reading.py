"""Request bodies are read once, within the size limit, whether or not they declare a length."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from tests.fixtures import MakeProxy

LIMIT = 64 * 1024


def _request(text: str) -> bytes:
    return orjson.dumps(
        {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": text}]}
    )


async def _pieces(body: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("text_size", "status"), [(LIMIT // 2, 200), (LIMIT * 2, 413)], ids=["within", "above"]
)
async def test_messages_body_limit_holds_with_and_without_content_length(
    make_proxy: MakeProxy, chunked: bool, text_size: int, status: int
) -> None:
    proxy = await make_proxy(max_body_bytes=LIMIT)
    body = _request("x" * text_size)
    data = _pieces(body) if chunked else body
    headers = {**proxy.auth_headers(), "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(proxy.url + "/v1/messages", data=data, headers=headers) as response,
    ):
        payload = await response.json(content_type=None)
    assert response.status == status
    if status == 413:
        assert payload["error"]["type"] == "request_too_large"
        assert proxy.fake.requests == []
    else:
        assert payload["type"] == "message"
        assert proxy.fake.requests[-1].body["messages"][-1]["content"] == "x" * text_size
