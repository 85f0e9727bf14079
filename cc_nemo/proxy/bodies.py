"""Request and reply bodies as bytes: reading the client's body once, encoding the upstream's,
and the body log (`log_bodies`)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from cc_nemo.translate.errors import ErrorReply, invalid_request

log = logging.getLogger("cc_nemo.proxy.exchange")

# How much of any one body we keep in the body log (log_bodies).
MAX_LOGGED_BODY_BYTES = 1024 * 1024


def exact_json(value: Any) -> bytes:
    """`value` as JSON in a bytes object of its own size.

    orjson returns its output in the buffer it reserved, up to ten times the output's length,
    and aiohttp keeps a request body until the reply is released: for a streamed answer, the
    whole answer long (bench/README.md: 2-6 MB of peak RSS at 20 concurrent 120 KB requests)."""
    return bytes(memoryview(orjson.dumps(value)))


async def read_json_body(request: web.Request) -> Any:
    """The parsed body; 413 above client_max_size, 400 if not JSON."""
    return parse_json_body(await read_body(request))


async def read_body(request: web.Request) -> bytes:
    """The raw body; 413 above client_max_size.

    Read straight from the stream: request.read() would build the body twice (a growing
    bytearray, then bytes) and keep it on the request until the answer is done, 4-6 MB of
    peak RSS for a 2 MB history (bench/README.md)."""
    limit = request.client_max_size
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    parts: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        parts.append(chunk)
    return b"".join(parts)


def parse_json_body(raw: bytes) -> Any:
    """The parsed body; 400 if not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ErrorReply(invalid_request(f"request body is not valid JSON: {exc}")) from None


def clip_body(body: bytes) -> str:
    """A body for the body log, cut at MAX_LOGGED_BODY_BYTES (a 20 MB prompt per line would
    fill the disk in a long session)."""
    if len(body) <= MAX_LOGGED_BODY_BYTES:
        return body.decode("utf-8", "replace")
    kept = body[:MAX_LOGGED_BODY_BYTES].decode("utf-8", "replace")
    return f"{kept}… [{len(body) - MAX_LOGGED_BODY_BYTES} more bytes not logged]"


class BodyLog:
    """Collects a streamed upstream body for the body log (only with log_bodies)."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, data: bytes) -> None:
        if self._enabled and self._size < MAX_LOGGED_BODY_BYTES:
            self._parts.append(data)
            self._size += len(data)

    def write(self, request_id: str) -> None:
        if self._enabled:
            log.info("%s upstream stream: %s", request_id, clip_body(b"".join(self._parts)))
