"""The `/v1/messages` exchange: route the model, translate, call the upstream, answer.

Streaming commits late, on purpose. A plain HTTP error before the first byte is what Claude
Code's retry and compaction logic understands, while an early `message_start` plus `ping`s is
what keeps its idle watchdogs quiet during a long think. So we wait up to COMMIT_WINDOW
seconds (or the first-byte budget when shorter) for the upstream's response headers:
- the upstream fails within that window (after our own retries) → a plain HTTP error with the
  mapped status, Anthropic body and `retry-after`;
- it answers, or the window passes → commit: 200 + `message_start` at once, then `ping`s
  every ping_interval of silence, then the translated events; any later failure (including
  retries that run out after the commit) becomes an SSE `error` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from cc_nemo.catalog import ModelSpec
from cc_nemo.ids import new_message_id, new_tool_id
from cc_nemo.routing import known_names, resolve_model
from cc_nemo.settings import ProxySettings
from cc_nemo.translate.errors import (
    AnthropicError,
    connect_error,
    invalid_request,
    map_upstream_error,
    stream_error_from_chunk,
    timeout_error,
)
from cc_nemo.translate.request import (
    InvalidRequest,
    ResponseContext,
    translate_request,
    validate_request,
)
from cc_nemo.translate.response import translate_completion
from cc_nemo.translate.sse import SSEDecoder, SSEMessage, encode_event
from cc_nemo.translate.stream import StreamTranslator
from cc_nemo.translate.tokens import estimate_tokens
from cc_nemo.translate.usage import Usage
from cc_nemo.upstream import (
    MAX_ERROR_BODY_BYTES,
    UpstreamClient,
    UpstreamConnectError,
    UpstreamReply,
    UpstreamTimeout,
    retry_delay,
)

log = logging.getLogger("cc_nemo.relay")

# Seconds we hold back the 200 waiting for upstream headers, so early failures stay HTTP errors.
COMMIT_WINDOW = 1.0
MIN_PING_INTERVAL = 0.05
# How much of any one body we keep in the body log (log_bodies).
MAX_LOGGED_BODY_BYTES = 1024 * 1024
STATUS_FOR_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_OVERFLOW_PREFIXES = ("prompt is too long", "input length and `max_tokens`")
# Client headers an Anthropic-speaking upstream needs to see (never the client's auth).
_PASSTHROUGH_CLIENT_HEADERS = ("anthropic-version", "anthropic-beta")


class ProxyError(Exception):
    """Answer this request with an Anthropic error (raised before the response is committed)."""

    def __init__(self, error: AnthropicError) -> None:
        super().__init__(error.message)
        self.error = error


def error_response(error: AnthropicError, request_id: str) -> web.Response:
    """A plain HTTP error in Anthropic's shape, with `retry-after` passed on."""
    headers = {"retry-after": error.retry_after} if error.retry_after else {}
    return web.Response(
        status=error.status,
        body=orjson.dumps(error.body(request_id)),
        content_type="application/json",
        headers=headers,
    )


@dataclass
class Exchange:
    """What one /v1/messages request did, for the request log line and the usage ledger."""

    request_id: str
    started: float
    requested_model: str = ""
    upstream_model: str = ""
    stream: bool = False
    spec: ModelSpec | None = None
    usage: Usage | None = None
    first_byte_at: float | None = None
    error_type: str | None = None
    upstream_attempts: int = 0
    client_gone: bool = False
    notes: list[str] = field(default_factory=list)

    def mark_first_byte(self) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = time.monotonic()

    @property
    def ttft_ms(self) -> float | None:
        if self.first_byte_at is None:
            return None
        return (self.first_byte_at - self.started) * 1000


async def read_json_body(request: web.Request) -> Any:
    """The parsed body; 413 above client_max_size (raised by aiohttp), 400 if not JSON."""
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProxyError(invalid_request(f"request body is not valid JSON: {exc}")) from None


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


class MessageAccumulator:
    """Folds Anthropic stream events back into one message (for a non-streaming client
    whose upstream streamed anyway)."""

    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self._blocks: list[dict[str, Any]] = []
        self._json: dict[int, str] = {}

    def add(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start":
            self.message = dict(event["message"])
            self.message["usage"] = dict(self.message.get("usage") or {})
        elif kind == "content_block_start":
            self._blocks.append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            self._apply_delta(int(event["index"]), event["delta"])
        elif kind == "content_block_stop":
            index = int(event["index"])
            if index in self._json and index < len(self._blocks):
                text = self._json.pop(index)
                self._blocks[index]["input"] = orjson.loads(text) if text.strip() else {}
        elif kind == "message_delta" and self.message is not None:
            self.message.update(event.get("delta") or {})
            self.message["usage"].update(event.get("usage") or {})
        elif kind == "error":
            self.error = dict(event.get("error") or {})

    def _apply_delta(self, index: int, delta: Mapping[str, Any]) -> None:
        if index >= len(self._blocks):
            return
        block = self._blocks[index]
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = block.get("text", "") + delta.get("text", "")
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
        elif kind == "signature_delta":
            block["signature"] = delta.get("signature", "")
        elif kind == "input_json_delta":
            self._json[index] = self._json.get(index, "") + delta.get("partial_json", "")

    def result(self) -> dict[str, Any]:
        """The message, or ProxyError for an error event or a stream that never started."""
        if self.error is not None:
            kind = str(self.error.get("type") or "api_error")
            raise ProxyError(
                AnthropicError(
                    STATUS_FOR_ERROR_TYPE.get(kind, 500), kind, str(self.error.get("message", ""))
                )
            )
        if self.message is None:
            raise ProxyError(
                AnthropicError(500, "api_error", "the upstream stream ended before a message")
            )
        self.message["content"] = self._blocks
        if not self.message.get("stop_reason"):
            self.message["stop_reason"] = "end_turn"
        return self.message


class EventSink:
    """Writes SSE to the client, remembers when it last wrote (for pings) and any error sent."""

    def __init__(
        self, response: web.StreamResponse, exchange: Exchange, *, ping_interval: float
    ) -> None:
        self._response = response
        self._exchange = exchange
        # A floor, so a zero or negative setting can't turn into a busy loop of pings.
        self.ping_interval = max(ping_interval, MIN_PING_INTERVAL)
        self.last_write = time.monotonic()

    @property
    def next_ping_at(self) -> float:
        return self.last_write + self.ping_interval

    async def send(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        for event in events:
            if event.get("type") == "error":
                self._exchange.error_type = str(event.get("error", {}).get("type", "api_error"))
        await self.send_raw(b"".join(encode_event(event) for event in events))

    async def send_raw(self, data: bytes) -> None:
        await self._response.write(data)
        self.last_write = time.monotonic()

    async def ping(self) -> None:
        await self.send([{"type": "ping"}])

    async def wait_pinging(self, awaitable: asyncio.Future[Any]) -> Any:
        """Await a future, sending a ping whenever the client has heard nothing for a while."""
        while True:
            remaining = self.next_ping_at - time.monotonic()
            done, _ = await asyncio.wait({awaitable}, timeout=max(remaining, 0.0))
            if done:
                return awaitable.result()
            if time.monotonic() >= self.next_ping_at:
                await self.ping()


class MessagesRelay:
    """Serves POST /v1/messages for one proxy session."""

    def __init__(
        self,
        settings: ProxySettings,
        upstream: UpstreamClient,
        *,
        forced_tool_choice_rejected: set[str],
    ) -> None:
        self.settings = settings
        self.upstream = upstream
        # Upstream model ids that rejected tool_choice "required" (WIRE.md C.8): send "auto".
        self.forced_tool_choice_rejected = forced_tool_choice_rejected
        self.commit_window = min(COMMIT_WINDOW, settings.first_byte_timeout)

    # ---- entry point

    async def handle(self, request: web.Request, exchange: Exchange) -> web.StreamResponse:
        payload = await read_json_body(request)
        if isinstance(payload, dict) and isinstance(payload.get("model"), str):
            exchange.requested_model = payload["model"]  # for the log line, even if invalid
        try:
            validate_request(payload)
        except InvalidRequest as exc:
            raise ProxyError(invalid_request(str(exc))) from None
        if self.settings.log_bodies:
            log.info("%s client request: %s", exchange.request_id, _clip(await request.read()))
        exchange.requested_model = payload["model"]
        exchange.stream = payload.get("stream") is True
        spec = resolve_model(self.settings, payload["model"])
        if spec is None:
            raise ProxyError(self._model_not_found(payload["model"]))
        exchange.spec = spec
        exchange.upstream_model = self.settings.provider.upstream_model_id(spec.model)

        if payload["max_tokens"] == 0:
            return await self._empty_reply(request, exchange, payload)
        if self.settings.provider.kind == "anthropic":
            return await self._passthrough(request, exchange, payload)

        try:
            translated = translate_request(payload, spec, upstream_model=exchange.upstream_model)
        except InvalidRequest as exc:
            raise ProxyError(invalid_request(str(exc))) from None
        body = translated.body
        if (
            body.get("tool_choice") == "required"
            and exchange.upstream_model in self.forced_tool_choice_rejected
        ):
            body = {**body, "tool_choice": "auto"}
        headers = self._upstream_headers(request, stream=exchange.stream)
        context = translated.context

        def error_for(status: int, raw: bytes, retry_after: str | None) -> AnthropicError:
            return map_upstream_error(
                status,
                raw,
                retry_after=retry_after,
                estimated_input_tokens=context.estimated_input_tokens,
                context_window=spec.context_window,
                max_tokens=body.get("max_tokens"),
            )

        if exchange.stream:
            return await self._stream(request, exchange, body, headers, context, error_for)
        return await self._complete(exchange, body, headers, context, error_for)

    def _model_not_found(self, name: str) -> AnthropicError:
        return AnthropicError(
            404,
            "not_found_error",
            f"model: {name!r} is not known to cc-proxy; known aliases: "
            f"{', '.join(known_names(self.settings))} (any claude-* name maps to the session's "
            "main model)",
        )

    def _upstream_headers(
        self, request: web.Request, *, stream: bool, anthropic: bool = False
    ) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        }
        session_id = request.headers.get("x-claude-code-session-id")
        if session_id:
            # Workers AI routes requests of one session to the same replica: prefix-cache hits.
            headers["x-session-affinity"] = session_id
        if anthropic:
            for name in _PASSTHROUGH_CLIENT_HEADERS:
                if name in request.headers:
                    headers[name] = request.headers[name]
        return headers

    # ---- upstream call with retries

    async def _open(
        self,
        exchange: Exchange,
        body: dict[str, Any],
        headers: Mapping[str, str],
        error_for: Callable[[int, bytes, str | None], AnthropicError],
    ) -> UpstreamReply:
        """A 2xx upstream reply, after at most max_retries proxy-side retries; else ProxyError."""
        attempt = 0
        tool_choice_relaxed = False
        while True:
            encoded = orjson.dumps(body)
            if self.settings.log_bodies:
                log.info("%s upstream request: %s", exchange.request_id, _clip(encoded))
            exchange.upstream_attempts += 1
            try:
                reply = await self.upstream.post(encoded, headers=headers)
            except UpstreamConnectError as exc:
                error = connect_error(str(exc))
            except UpstreamTimeout as exc:
                error = timeout_error(str(exc))
            else:
                if reply.ok:
                    return reply
                error, status = await self._read_error(reply, error_for)
                log.warning(
                    "%s upstream answered %d: %s", exchange.request_id, status, error.message
                )
                if (
                    not tool_choice_relaxed
                    and status == 400
                    and body.get("tool_choice") == "required"
                    and not error.message.startswith(_OVERFLOW_PREFIXES)
                ):
                    # WIRE.md C.8: some models crash on a forced tool choice; retry once
                    # with "auto" and keep doing so for this model.
                    tool_choice_relaxed = True
                    self.forced_tool_choice_rejected.add(exchange.upstream_model)
                    exchange.notes.append("tool_choice=required rejected; retried with auto")
                    body = {**body, "tool_choice": "auto"}
                    continue
            if error.retryable_upstream and attempt < self.settings.max_retries:
                delay = retry_delay(
                    attempt,
                    base_delay=self.settings.retry_base_delay,
                    retry_after=error.retry_after,
                )
                if delay is not None:
                    attempt += 1
                    log.info(
                        "%s retrying upstream in %.2f s (%s)",
                        exchange.request_id,
                        delay,
                        error.type,
                    )
                    await asyncio.sleep(delay)
                    continue
            raise ProxyError(error)

    async def _read_error(
        self, reply: UpstreamReply, error_for: Callable[[int, bytes, str | None], AnthropicError]
    ) -> tuple[AnthropicError, int]:
        try:
            raw = await reply.read(limit=MAX_ERROR_BODY_BYTES)
        except (UpstreamTimeout, aiohttp.ClientError, OSError):
            raw = b""
        finally:
            reply.close()
        return error_for(reply.status, raw, reply.retry_after), reply.status

    # ---- non-streaming

    async def _complete(
        self,
        exchange: Exchange,
        body: dict[str, Any],
        headers: Mapping[str, str],
        context: ResponseContext,
        error_for: Callable[[int, bytes, str | None], AnthropicError],
    ) -> web.Response:
        reply = await self._open(exchange, body, headers, error_for)
        raw = await self._read_reply(reply, exchange)
        exchange.mark_first_byte()
        message_id = new_message_id()
        if reply.is_event_stream:
            # Some servers stream whatever was asked: fold the stream into one message.
            translator = StreamTranslator(context, message_id=message_id, new_tool_id=new_tool_id)
            accumulator = MessageAccumulator()
            for event in self._translate_sse_body(raw, translator, exchange):
                accumulator.add(event)
            message = accumulator.result()
        else:
            completion = self._parse_completion(raw)
            message = translate_completion(
                completion, context, message_id=message_id, new_tool_id=new_tool_id
            )
        exchange.usage = usage_of(message)
        return web.Response(body=orjson.dumps(message), content_type="application/json")

    async def _read_reply(self, reply: UpstreamReply, exchange: Exchange) -> bytes:
        try:
            raw = await reply.read()
        except UpstreamTimeout as exc:
            raise ProxyError(timeout_error(str(exc))) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ProxyError(_dropped_error(exc)) from None
        finally:
            reply.close()
        if self.settings.log_bodies:
            log.info("%s upstream reply: %s", exchange.request_id, _clip(raw))
        return raw

    def _parse_completion(self, raw: bytes) -> dict[str, Any]:
        try:
            completion = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProxyError(
                AnthropicError(
                    500, "api_error", "the upstream answered with a body that is not JSON"
                )
            ) from None
        if not isinstance(completion, dict):
            raise ProxyError(
                AnthropicError(500, "api_error", "the upstream answered with an unexpected body")
            )
        error = stream_error_from_chunk(completion)
        if error is not None:
            raise ProxyError(error)
        return completion

    def _translate_sse_body(
        self, raw: bytes, translator: StreamTranslator, exchange: Exchange
    ) -> list[dict[str, Any]]:
        decoder = SSEDecoder()
        events = translator.start()
        saw_done = False
        for message in [*decoder.feed(raw), *decoder.flush()]:
            saw_done = self._feed_sse(message, translator, events, exchange)
            if saw_done or translator.finished:
                break
        if not translator.finished:
            events += translator.finish(saw_done=saw_done)
        return events

    # ---- streaming

    async def _stream(
        self,
        request: web.Request,
        exchange: Exchange,
        body: dict[str, Any],
        headers: Mapping[str, str],
        context: ResponseContext,
        error_for: Callable[[int, bytes, str | None], AnthropicError],
    ) -> web.StreamResponse:
        message_id = new_message_id()
        translator = StreamTranslator(context, message_id=message_id, new_tool_id=new_tool_id)
        opening = asyncio.ensure_future(self._open(exchange, body, headers, error_for))
        reply: UpstreamReply | None = None
        response: web.StreamResponse | None = None
        try:
            await asyncio.wait({opening}, timeout=self.commit_window)
            if opening.done():
                reply = opening.result()  # ProxyError here → plain HTTP error
            response = await start_event_stream(request)
            sink = EventSink(response, exchange, ping_interval=self.settings.ping_interval)
            await sink.send(translator.start())
            if reply is None:
                try:
                    reply = await sink.wait_pinging(opening)
                except ProxyError as exc:
                    await sink.send(translator.fail(exc.error))
                    return response
            if reply.is_event_stream:
                await self._pump_translated(reply, sink, translator, exchange)
            else:
                await self._replay_json(reply, sink, translator, context, message_id, exchange)
            exchange.usage = translator.usage if exchange.usage is None else exchange.usage
            return response
        except ConnectionResetError:
            # The client went away mid-stream; the finally below drops the upstream request.
            exchange.client_gone = True
            if response is None:
                raise
            return response
        finally:
            await _discard(opening)
            if reply is None and not opening.cancelled() and opening.exception() is None:
                reply = opening.result()  # answered just as we were leaving: still close it
            if reply is not None:
                reply.close()

    async def _replay_json(
        self,
        reply: UpstreamReply,
        sink: EventSink,
        translator: StreamTranslator,
        context: ResponseContext,
        message_id: str,
        exchange: Exchange,
    ) -> None:
        """The upstream answered a stream request with one JSON body: replay it as events."""
        reading = asyncio.ensure_future(self._read_reply(reply, exchange))
        try:
            raw = await sink.wait_pinging(reading)
            exchange.mark_first_byte()
            completion = self._parse_completion(raw)
        except ProxyError as exc:
            await sink.send(translator.fail(exc.error))
            return
        finally:
            await _discard(reading)
        message = translate_completion(
            completion, context, message_id=message_id, new_tool_id=new_tool_id
        )
        exchange.usage = usage_of(message)
        await sink.send(message_events(message))

    async def _pump_translated(
        self,
        reply: UpstreamReply,
        sink: EventSink,
        translator: StreamTranslator,
        exchange: Exchange,
    ) -> None:
        decoder = SSEDecoder()
        saw_done = False
        logged = _BodyLog(self.settings.log_bodies)
        try:
            async with contextlib.aclosing(self._chunks(reply, sink, exchange)) as chunks:
                async for data in chunks:
                    logged.add(data)
                    events: list[dict[str, Any]] = []
                    for message in decoder.feed(data):
                        saw_done = self._feed_sse(message, translator, events, exchange)
                        if saw_done or translator.finished:
                            break
                    await sink.send(events)
                    if saw_done or translator.finished:
                        break
        except UpstreamTimeout as exc:
            await sink.send(translator.fail(timeout_error(str(exc))))
            return
        finally:
            logged.write(exchange.request_id)
        if translator.finished:
            return
        events = []
        if not saw_done:
            for message in decoder.flush():
                saw_done = self._feed_sse(message, translator, events, exchange)
        if not translator.finished:
            events += translator.finish(saw_done=saw_done)
        await sink.send(events)

    def _feed_sse(
        self,
        message: SSEMessage,
        translator: StreamTranslator,
        events: list[dict[str, Any]],
        exchange: Exchange,
    ) -> bool:
        """Translate one upstream SSE message into `events`; True at `[DONE]`."""
        data = message.data.strip()
        if data == "[DONE]":
            return True
        if not data:
            return False
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("%s skipped an unparseable upstream chunk", exchange.request_id)
            return False
        if not isinstance(chunk, dict):
            return False
        error = stream_error_from_chunk(chunk)
        if error is not None:
            events += translator.fail(error)
            return False
        events += translator.feed(chunk)
        return False

    async def _chunks(
        self, reply: UpstreamReply, sink: EventSink, exchange: Exchange
    ) -> AsyncIterator[bytes]:
        """Upstream body pieces as they come; pings the client during silences; raises
        UpstreamTimeout past the first-byte or read budget; ends quietly on EOF or a drop
        (the translator then decides between a complete message and a truncation error)."""
        settings = self.settings
        first_byte_deadline = exchange.started + settings.first_byte_timeout
        last_data: float | None = None
        pending: asyncio.Future[bytes] | None = None
        try:
            while True:
                if pending is None:
                    pending = reply.next_chunk()
                if last_data is None:
                    deadline, budget = first_byte_deadline, settings.first_byte_timeout
                else:
                    deadline, budget = last_data + settings.read_timeout, settings.read_timeout
                wake = min(deadline, sink.next_ping_at)
                done, _ = await asyncio.wait({pending}, timeout=max(wake - time.monotonic(), 0))
                if not done:
                    now = time.monotonic()
                    if now >= deadline:
                        raise UpstreamTimeout("data", budget)
                    if now >= sink.next_ping_at:
                        await sink.ping()
                    continue
                try:
                    data = pending.result()
                except (aiohttp.ClientError, OSError) as exc:
                    log.warning("%s upstream dropped mid-body: %s", exchange.request_id, exc)
                    exchange.notes.append("upstream dropped mid-body")
                    return
                pending = None
                if not data:
                    return
                exchange.mark_first_byte()
                last_data = time.monotonic()
                if last_data >= sink.next_ping_at:
                    # Data is flowing but the translator holds it back (tool arguments are
                    # buffered): the client still needs a sign of life.
                    await sink.ping()
                yield data
        finally:
            await _discard(pending)

    # ---- local answers

    async def _empty_reply(
        self, request: web.Request, exchange: Exchange, payload: Mapping[str, Any]
    ) -> web.StreamResponse:
        """max_tokens 0 ("warm the cache, generate nothing"): answered here, no upstream call."""
        message = {
            "id": new_message_id(),
            "type": "message",
            "role": "assistant",
            "model": payload["model"],
            "content": [],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": max(1, estimate_tokens(payload)),
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        exchange.usage = usage_of(message)
        if not exchange.stream:
            return web.Response(body=orjson.dumps(message), content_type="application/json")
        response = await start_event_stream(request)
        await EventSink(response, exchange, ping_interval=self.settings.ping_interval).send(
            [message_start_event(message), *message_events(message)]
        )
        return response

    # ---- pass-through (provider kind "anthropic")

    async def _passthrough(
        self, request: web.Request, exchange: Exchange, payload: dict[str, Any]
    ) -> web.StreamResponse:
        """Forward to an Anthropic-speaking upstream: only auth, the model name and logging
        change. No early commit: such upstreams send their headers at once."""
        body = {**payload, "model": exchange.upstream_model}
        headers = self._upstream_headers(request, stream=exchange.stream, anthropic=True)
        estimated = estimate_tokens(payload)
        spec = exchange.spec

        def error_for(status: int, raw: bytes, retry_after: str | None) -> AnthropicError:
            return anthropic_upstream_error(
                status,
                raw,
                retry_after=retry_after,
                estimated_input_tokens=estimated,
                context_window=spec.context_window if spec else None,
                max_tokens=payload.get("max_tokens"),
            )

        reply = await self._open(exchange, body, headers, error_for)
        try:
            if reply.is_event_stream and exchange.stream:
                return await self._pump_passthrough(request, reply, exchange)
            raw = await self._read_reply(reply, exchange)
            exchange.mark_first_byte()
            if reply.is_event_stream:
                message = self._fold_anthropic_sse(raw)
            else:
                message = self._parse_message(raw)
            message["model"] = exchange.requested_model
            exchange.usage = usage_of(message)
            if not exchange.stream:
                return web.Response(body=orjson.dumps(message), content_type="application/json")
            response = await start_event_stream(request)
            await EventSink(response, exchange, ping_interval=self.settings.ping_interval).send(
                [message_start_event(message), *message_events(message)]
            )
            return response
        finally:
            reply.close()

    def _parse_message(self, raw: bytes) -> dict[str, Any]:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            message = None
        if isinstance(message, dict) and message.get("type") == "error":
            accumulator = MessageAccumulator()
            accumulator.add(message)
            accumulator.result()  # raises the upstream's error as ours
        if not isinstance(message, dict) or message.get("type") != "message":
            raise ProxyError(
                AnthropicError(500, "api_error", "the upstream answered with an unexpected body")
            )
        return message

    def _fold_anthropic_sse(self, raw: bytes) -> dict[str, Any]:
        decoder = SSEDecoder()
        accumulator = MessageAccumulator()
        for message in [*decoder.feed(raw), *decoder.flush()]:
            with contextlib.suppress(orjson.JSONDecodeError):
                event = orjson.loads(message.data)
                if isinstance(event, dict):
                    accumulator.add(event)
        return accumulator.result()

    async def _pump_passthrough(
        self, request: web.Request, reply: UpstreamReply, exchange: Exchange
    ) -> web.StreamResponse:
        response = await start_event_stream(request)
        sink = EventSink(response, exchange, ping_interval=self.settings.ping_interval)
        decoder = SSEDecoder()
        rewriter = _PassthroughRewriter(exchange)
        logged = _BodyLog(self.settings.log_bodies)
        try:
            async with contextlib.aclosing(self._chunks(reply, sink, exchange)) as chunks:
                async for data in chunks:
                    logged.add(data)
                    out = b"".join(rewriter.frame(m) for m in decoder.feed(data))
                    if out:
                        await sink.send_raw(out)
            tail = b"".join(rewriter.frame(m) for m in decoder.flush())
            if tail:
                await sink.send_raw(tail)
            if not rewriter.complete:
                await sink.send(
                    [AnthropicError(500, "api_error", "upstream stream truncated").event()]
                )
        except UpstreamTimeout as exc:
            await sink.send([timeout_error(str(exc)).event()])
        except ConnectionResetError:
            exchange.client_gone = True
        finally:
            logged.write(exchange.request_id)
        exchange.usage = rewriter.usage()
        return response


class _PassthroughRewriter:
    """Re-frames an Anthropic stream unchanged except `message_start`'s model; tracks usage."""

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._usage: dict[str, int] = {}
        self.complete = False

    def frame(self, message: SSEMessage) -> bytes:
        try:
            event = orjson.loads(message.data)
        except orjson.JSONDecodeError:
            event = None
        if isinstance(event, dict):
            kind = event.get("type")
            if kind == "message_start" and isinstance(event.get("message"), dict):
                event["message"]["model"] = self._exchange.requested_model
                self._usage.update(event["message"].get("usage") or {})
                return encode_event(event)
            if kind == "message_delta":
                self._usage.update(event.get("usage") or {})
                self.complete = True
            elif kind == "message_stop":
                self.complete = True
            elif kind == "error":
                self.complete = True
                self._exchange.error_type = str((event.get("error") or {}).get("type", "api_error"))
        name = f"event: {message.event}\n".encode() if message.event else b""
        return name + b"data: " + message.data.encode() + b"\n\n"

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


async def start_event_stream(request: web.Request) -> web.StreamResponse:
    """Send 200 and SSE headers now (unbuffered: Claude Code's watchdogs count bytes)."""
    response = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        },
    )
    await response.prepare(request)
    return response


def _dropped_error(exc: BaseException) -> AnthropicError:
    return AnthropicError(
        500, "api_error", f"the upstream connection dropped while answering: {type(exc).__name__}"
    )


async def _discard(future: asyncio.Future[Any] | None) -> None:
    """Cancel a helper future if still running and consume its outcome (no stray warnings)."""
    if future is None:
        return
    if not future.done():
        future.cancel()
        # wait() never raises the future's own exception; our own cancellation still propagates.
        await asyncio.wait({future})
    if not future.cancelled():
        future.exception()


def _clip(body: bytes) -> str:
    """A body for the body log, cut at MAX_LOGGED_BODY_BYTES (a 20 MB prompt per line would
    fill the disk in a long session)."""
    if len(body) <= MAX_LOGGED_BODY_BYTES:
        return body.decode("utf-8", "replace")
    kept = body[:MAX_LOGGED_BODY_BYTES].decode("utf-8", "replace")
    return f"{kept}… [{len(body) - MAX_LOGGED_BODY_BYTES} more bytes not logged]"


class _BodyLog:
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
            log.info("%s upstream stream: %s", request_id, _clip(b"".join(self._parts)))
