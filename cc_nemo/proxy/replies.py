"""Whole replies: error bodies, a complete message delivered as JSON or replayed as events,
and an upstream's JSON completion checked before it is translated."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from cc_nemo.proxy.record import Exchange
from cc_nemo.proxy.stream_writer import writer_for
from cc_nemo.settings.runtime import ProxySettings
from cc_nemo.translate.errors import AnthropicError, ErrorReply
from cc_nemo.translate.request import ResponseContext
from cc_nemo.translate.stream import payload_error
from cc_nemo.translate.usage import Usage


def error_response(error: AnthropicError, request_id: str) -> web.Response:
    """A plain HTTP error in Anthropic's shape, with `retry-after` passed on."""
    headers = {"retry-after": error.retry_after} if error.retry_after else {}
    return web.Response(
        status=error.status,
        body=orjson.dumps(error.body(request_id)),
        content_type="application/json",
        headers=headers,
    )


def usage_of(message: Mapping[str, Any]) -> Usage:
    """The Usage of an Anthropic message body."""
    usage = message.get("usage") if isinstance(message.get("usage"), Mapping) else {}
    return Usage(
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        cache_read_input_tokens=int(usage.get("cache_read_input_tokens") or 0),
        cache_creation_input_tokens=int(usage.get("cache_creation_input_tokens") or 0),
    )


def message_start_event(message: Mapping[str, Any]) -> dict[str, Any]:
    """`message_start` for a complete message (content emptied, stop_reason pending)."""
    start = dict(message)
    start["content"] = []
    start["stop_reason"] = None
    start["stop_sequence"] = None
    return {"type": "message_start", "message": start}


def message_events(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The content, `message_delta` and `message_stop` events that replay a complete message."""
    events: list[dict[str, Any]] = []
    for index, block in enumerate(message.get("content") or []):
        kind = block.get("type")
        delta: dict[str, Any] | None = None
        extra: dict[str, Any] | None = None
        if kind == "text":
            start = {"type": "text", "text": ""}
            if block.get("text"):
                delta = {"type": "text_delta", "text": block["text"]}
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            if block.get("thinking"):
                delta = {"type": "thinking_delta", "thinking": block["thinking"]}
            extra = {"type": "signature_delta", "signature": block.get("signature") or ""}
        elif kind == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            delta = {
                "type": "input_json_delta",
                "partial_json": orjson.dumps(block.get("input") or {}).decode(),
            }
        else:
            start = dict(block)
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        for item in (delta, extra):
            if item is not None:
                events.append({"type": "content_block_delta", "index": index, "delta": item})
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": message.get("stop_reason") or "end_turn",
                "stop_sequence": message.get("stop_sequence"),
            },
            "usage": dict(message.get("usage") or {"output_tokens": 0}),
        }
    )
    events.append({"type": "message_stop"})
    return events


async def deliver_message(
    request: web.Request, exchange: Exchange, settings: ProxySettings, message: dict[str, Any]
) -> web.StreamResponse:
    """A complete message, as JSON or replayed as events, whichever the client asked for."""
    exchange.usage = usage_of(message)
    if not exchange.stream:
        return web.Response(body=orjson.dumps(message), content_type="application/json")
    writer = writer_for(request, exchange, settings, hold=False)
    await writer.send([message_start_event(message), *message_events(message)])
    assert writer.response is not None
    return writer.response


def parse_completion(raw: bytes, context: ResponseContext) -> dict[str, Any]:
    """An upstream's JSON completion; ErrorReply for a body that is not one, or that carries
    an error (mapped with the request's own figures, for the overflow wording)."""
    try:
        completion = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ErrorReply(
            AnthropicError(500, "api_error", "the upstream answered with a body that is not JSON")
        ) from None
    if not isinstance(completion, dict):
        raise ErrorReply(
            AnthropicError(500, "api_error", "the upstream answered with an unexpected body")
        )
    error = payload_error(completion, context)
    if error is not None:
        raise ErrorReply(error)
    return completion
