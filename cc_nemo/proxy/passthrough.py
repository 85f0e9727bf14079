"""Pass-through for upstreams that already speak Anthropic Messages (provider kind "anthropic"):
only the model name (and auth, set by the caller) changes on the way. The pure helpers first,
then the exchange that uses them."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from cc_nemo.proxy.bodies import BodyLog
from cc_nemo.proxy.calls import UpstreamCalls
from cc_nemo.proxy.record import Exchange
from cc_nemo.proxy.replies import deliver_message, usage_of
from cc_nemo.proxy.stream_writer import writer_for
from cc_nemo.proxy.upstream import UpstreamReply, UpstreamTimeout
from cc_nemo.translate.errors import AnthropicError, ErrorReply, map_upstream_error, timeout_error
from cc_nemo.translate.response import MessageAccumulator
from cc_nemo.translate.sse import (
    SSEDecoder,
    SSELineTooLong,
    SSEMessage,
    encode_event,
    encode_message,
)
from cc_nemo.translate.stream import TRUNCATED_MESSAGE
from cc_nemo.translate.tokens import estimate_tokens
from cc_nemo.translate.usage import Usage

# Client headers an Anthropic-speaking upstream needs to see (never the client's auth).
PASSTHROUGH_CLIENT_HEADERS = ("anthropic-version", "anthropic-beta")


_UNTOUCHED_EVENTS = frozenset(
    {"content_block_start", "content_block_delta", "content_block_stop", "ping"}
)


# Blocks a client may act on as soon as they stop (Anthropic's server tools run upstream).
_TOOL_BLOCKS = frozenset({"tool_use"})


def _parse_event(data: str) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


class PassthroughRewriter:
    """Re-frames an Anthropic stream unchanged except `message_start`'s model; tracks usage.

    A tool_use block's `content_block_stop`, and everything after it, is held until the
    upstream's `message_delta`: Claude Code runs a tool as soon as its block stops, so a stream
    that failed after that stop would have it re-send the turn and run the tool twice
    (docs/wire.md, "Why a tool block stops only at the end")."""

    def __init__(self, requested_model: str) -> None:
        self._requested_model = requested_model
        self._usage: dict[str, int] = {}
        self._tool_blocks: set[object] = set()
        self._held: list[bytes] | None = None
        self.complete = False
        self.error_type: str | None = None

    def frame(self, message: SSEMessage) -> bytes:
        framed = self._frame(message)
        if message.event == "content_block_start":
            started = _parse_event(message.data)
            if (
                isinstance(started, dict)
                and (started.get("content_block") or {}).get("type") in _TOOL_BLOCKS
            ):
                self._tool_blocks.add(started.get("index"))
        if self._held is None:
            if message.event == "content_block_stop" and self._tool_blocks:
                stopped = _parse_event(message.data)
                if isinstance(stopped, dict) and stopped.get("index") in self._tool_blocks:
                    self._held = [framed]
                    return b""
            return framed
        if self.error_type is not None:
            # The answer failed after all: the held stop must never reach the client.
            self._held = None
            return framed
        self._held.append(framed)
        if self.complete:  # message_delta or message_stop: the answer is whole
            released, self._held = b"".join(self._held), None
            return released
        return b""

    def _frame(self, message: SSEMessage) -> bytes:
        # Content events are nearly the whole stream and pass unchanged: only parse the rest.
        event = None if message.event in _UNTOUCHED_EVENTS else _parse_event(message.data)
        if isinstance(event, dict):
            kind = event.get("type")
            if kind == "message_start" and isinstance(event.get("message"), dict):
                event["message"]["model"] = self._requested_model
                self._usage.update(event["message"].get("usage") or {})
                return encode_event(event)
            if kind == "message_delta":
                self._usage.update(event.get("usage") or {})
                self.complete = True
            elif kind == "message_stop":
                self.complete = True
            elif kind == "error":
                self.complete = True
                self.error_type = str((event.get("error") or {}).get("type", "api_error"))
        return encode_message(message)

    def usage(self) -> Usage:
        return usage_of({"usage": self._usage})


def anthropic_upstream_error(
    status: int,
    raw: bytes,
    *,
    retry_after: str | None,
    estimated_input_tokens: int,
    context_window: int | None,
    max_tokens: int | None,
) -> AnthropicError:
    """An Anthropic-speaking upstream's error, kept as it is when it is already in that shape."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and isinstance(error.get("type"), str):
        return AnthropicError(
            status,
            error["type"],
            str(error.get("message", "")),
            retry_after=retry_after,
            retryable_upstream=status == 529 or status >= 500,
        )
    return map_upstream_error(
        status,
        raw,
        retry_after=retry_after,
        estimated_input_tokens=estimated_input_tokens,
        context_window=context_window,
        max_tokens=max_tokens,
    )


def parse_message(raw: bytes) -> dict[str, Any]:
    """A non-streaming Anthropic reply; its error, or an unexpected body, as ErrorReply."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        message = None
    if isinstance(message, dict) and message.get("type") == "error":
        accumulator = MessageAccumulator()
        accumulator.add(message)
        accumulator.result()  # raises the upstream's error as ours
    if not isinstance(message, dict) or message.get("type") != "message":
        raise ErrorReply(
            AnthropicError(500, "api_error", "the upstream answered with an unexpected body")
        )
    return message


def fold_anthropic_sse(raw: bytes) -> dict[str, Any]:
    """An Anthropic stream received whole (for a non-streaming client) as one message.

    ErrorReply (500 api_error) when the stream stops before message_delta/message_stop: a
    cut-off answer must not reach the client as a complete `end_turn` message. The upstream's
    own error event, or a tool input that is not valid JSON, raises ErrorReply too."""
    decoder = SSEDecoder()
    accumulator = MessageAccumulator()
    try:
        messages = [*decoder.feed(raw), *decoder.flush()]
    except SSELineTooLong as exc:
        # Worded and numbered as the relay answers the same fault on a translated stream.
        raise ErrorReply(
            AnthropicError(502, "api_error", f"the upstream stream is malformed: {exc}")
        ) from None
    for message in messages:
        event = _parse_event(message.data)
        if isinstance(event, dict):
            accumulator.add(event)
    if accumulator.error is None and accumulator.message is not None and not accumulator.ended:
        raise ErrorReply(AnthropicError(500, "api_error", TRUNCATED_MESSAGE))
    return accumulator.result()


async def answer_passthrough(
    request: web.Request,
    exchange: Exchange,
    payload: dict[str, Any],
    calls: UpstreamCalls,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    """Forward to an Anthropic-speaking upstream: only auth, the model name and logging
    change. No hold: such upstreams send their headers at once."""
    body = {**payload, "model": exchange.upstream_model}
    spec = exchange.spec

    def error_for(status: int, raw: bytes, retry_after: str | None) -> AnthropicError:
        return anthropic_upstream_error(
            status,
            raw,
            retry_after=retry_after,
            estimated_input_tokens=estimate_tokens(payload),  # only an error needs it
            context_window=spec.context_window if spec else None,
            max_tokens=payload.get("max_tokens"),
        )

    reply = await calls.open(exchange, body, headers, error_for, calls.budget())
    try:
        if reply.is_event_stream and exchange.stream:
            return await _pump(request, reply, exchange, calls)
        raw = await calls.read_reply(reply, exchange)
        exchange.mark_first_byte()
        message = fold_anthropic_sse(raw) if reply.is_event_stream else parse_message(raw)
        message["model"] = exchange.requested_model
        return await deliver_message(request, exchange, calls.settings, message)
    finally:
        reply.close()


async def _pump(
    request: web.Request, reply: UpstreamReply, exchange: Exchange, calls: UpstreamCalls
) -> web.StreamResponse:
    writer = writer_for(request, exchange, calls.settings, hold=False)
    await writer.commit()
    decoder = SSEDecoder()
    rewriter = PassthroughRewriter(exchange.requested_model)
    logged = BodyLog(calls.settings.log_bodies)
    chunks = calls.chunks(reply, writer, exchange)
    try:
        async with contextlib.aclosing(chunks):
            async for data in chunks:
                logged.add(data)
                out = b"".join(rewriter.frame(m) for m in decoder.feed(data))
                if out:
                    await writer.send_raw(out)
        tail = b"".join(rewriter.frame(m) for m in decoder.flush())
        if tail:
            await writer.send_raw(tail)
        if not rewriter.complete:
            await writer.fail(AnthropicError(500, "api_error", TRUNCATED_MESSAGE))
    except UpstreamTimeout as exc:
        await writer.fail(timeout_error(str(exc)))
    except SSELineTooLong as exc:
        await writer.fail(
            AnthropicError(502, "api_error", f"the upstream stream is malformed: {exc}")
        )
    except ConnectionResetError:
        exchange.client_gone = True
    finally:
        logged.write(exchange.request_id)
        exchange.error_type = rewriter.error_type or exchange.error_type
    exchange.usage = rewriter.usage()
    assert writer.response is not None
    return writer.response
