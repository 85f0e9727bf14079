"""The `/v1/messages` exchange: route the model, translate, call the upstream, answer.

A streamed answer follows the commit rule (docs/architecture.md): the status line is held until
the upstream's first content, so a failure before it is a plain HTTP error that Claude Code
retries or compacts on; the proxy retries a failed attempt unseen while the client has had only
`message_start` and pings; after content, a transient failure is an `overloaded_error` event
(Claude Code retries the turn) and a permanent one keeps its type. When a model stays out of
capacity after the retries, its configured fallbacks answer the same request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from cc_nemo.proxy.ids import new_message_id, new_tool_id
from cc_nemo.proxy.passthrough import (
    PASSTHROUGH_CLIENT_HEADERS,
    PassthroughRewriter,
    anthropic_upstream_error,
    fold_anthropic_sse,
    parse_message,
)
from cc_nemo.proxy.replies import ProxyError, message_events, message_start_event, usage_of
from cc_nemo.proxy.routing import known_names, resolve_model
from cc_nemo.proxy.stream_writer import StreamWriter
from cc_nemo.proxy.upstream import (
    MAX_ERROR_BODY_BYTES,
    UpstreamClient,
    UpstreamConnectError,
    UpstreamReply,
    UpstreamTimeout,
    retry_delay,
)
from cc_nemo.settings.catalog import ModelSpec
from cc_nemo.settings.runtime import ProxySettings
from cc_nemo.translate.errors import (
    AnthropicError,
    connect_error,
    invalid_request,
    is_transient,
    map_upstream_error,
    timeout_error,
)
from cc_nemo.translate.request import (
    InvalidRequest,
    ResponseContext,
    translate_request,
    validate_request,
)
from cc_nemo.translate.response import (
    MessageAccumulator,
    completion_events,
    translate_completion,
)
from cc_nemo.translate.sse import SSEDecoder, SSELineTooLong
from cc_nemo.translate.stream import StreamTranslator, payload_error
from cc_nemo.translate.tokens import estimate_tokens
from cc_nemo.translate.usage import Usage

log = logging.getLogger("cc_nemo.proxy.exchange")

# How much of any one body we keep in the body log (log_bodies).
MAX_LOGGED_BODY_BYTES = 1024 * 1024
_OVERFLOW_PREFIXES = ("prompt is too long", "input length and `max_tokens`")
# An upstream 400 that names the tool choice: only then is a forced choice relaxed for good.
_ABOUT_TOOL_CHOICE = re.compile(r"tool[ _-]?choice", re.IGNORECASE)

ErrorMapper = Callable[[int, bytes, "str | None"], AnthropicError]


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
    # The alias of the model this request asked for when a fallback answered in its place.
    fallback_from: str | None = None
    notes: list[str] = field(default_factory=list)

    def mark_first_byte(self) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = time.monotonic()

    @property
    def ttft_ms(self) -> float | None:
        if self.first_byte_at is None:
            return None
        return (self.first_byte_at - self.started) * 1000


@dataclass
class _Route:
    """One model's translation of the request, ready to send."""

    spec: ModelSpec
    upstream_model: str
    body: dict[str, Any]
    context: ResponseContext
    error_for: ErrorMapper


class _RetryBudget:
    """Proxy-side retries left for one route: shared by every phase of its attempts."""

    def __init__(self, retries: int) -> None:
        self.used = 0
        self._retries = retries

    def take(self) -> int | None:
        """The 0-based number of the next retry, or None when the budget is spent."""
        if self.used >= self._retries:
            return None
        self.used += 1
        return self.used - 1


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
        raise ProxyError(invalid_request(f"request body is not valid JSON: {exc}")) from None


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

    # ---- entry point

    async def handle(self, request: web.Request, exchange: Exchange) -> web.StreamResponse:
        raw = await read_body(request)
        payload = parse_json_body(raw)
        if isinstance(payload, dict) and isinstance(payload.get("model"), str):
            exchange.requested_model = payload["model"]  # for the log line, even if invalid
        try:
            validate_request(payload)
        except InvalidRequest as exc:
            raise ProxyError(invalid_request(str(exc))) from None
        if self.settings.log_bodies:
            log.info("%s client request: %s", exchange.request_id, _clip(raw))
        del raw  # not kept while the answer streams, maybe for minutes
        exchange.requested_model = payload["model"]
        exchange.stream = payload.get("stream") is True
        spec = resolve_model(self.settings, payload["model"])
        if spec is None:
            raise ProxyError(self._model_not_found(payload["model"]))
        self._use(exchange, spec)

        if payload["max_tokens"] == 0:
            return await self._empty_reply(request, exchange, payload)
        if self.settings.provider.kind == "anthropic":
            return await self._passthrough(request, exchange, payload)

        route = self._route(payload, spec)
        fallbacks = self.settings.fallbacks_for(spec)
        headers = self._upstream_headers(request, stream=exchange.stream)
        if exchange.stream:
            return await self._stream(request, exchange, payload, headers, route, fallbacks)
        return await self._complete(exchange, payload, headers, route, fallbacks)

    def _use(self, exchange: Exchange, spec: ModelSpec) -> None:
        exchange.spec = spec
        exchange.upstream_model = self.settings.provider.upstream_model_id(spec.model)

    def _route(self, payload: Mapping[str, Any], spec: ModelSpec) -> _Route:
        """The request translated for `spec`'s limits and quirks; ProxyError if it can't be."""
        upstream_model = self.settings.provider.upstream_model_id(spec.model)
        try:
            translated = translate_request(payload, spec, upstream_model=upstream_model)
        except InvalidRequest as exc:
            raise ProxyError(invalid_request(str(exc))) from None
        body = translated.body
        if (
            body.get("tool_choice") == "required"
            and upstream_model in self.forced_tool_choice_rejected
        ):
            body = {**body, "tool_choice": "auto"}
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

        return _Route(spec, upstream_model, body, context, error_for)

    def _next_route(
        self,
        exchange: Exchange,
        payload: Mapping[str, Any],
        fallbacks: tuple[ModelSpec, ...],
        tried: int,
        error: AnthropicError,
    ) -> tuple[_Route, int] | None:
        """The fallback that answers after `error`, when the model stayed out of capacity or
        unreachable; fallbacks that cannot take the request (no tools, too small) are skipped."""
        if error.type != "overloaded_error":
            return None
        while tried < len(fallbacks):
            spec = fallbacks[tried]
            tried += 1
            try:
                route = self._route(payload, spec)
            except ProxyError as exc:
                exchange.notes.append(f"fallback {spec.alias} skipped: {exc.error.message}")
                continue
            original = exchange.fallback_from or (exchange.spec.alias if exchange.spec else "")
            log.warning(
                "%s %s out of capacity after retries (%s); falling back to %s",
                exchange.request_id,
                original,
                error.message,
                spec.alias,
            )
            exchange.fallback_from = original
            exchange.notes.append(f"answered by {spec.alias}: {original} out of capacity")
            self._use(exchange, spec)
            return route, tried
        return None

    def _model_not_found(self, name: str) -> AnthropicError:
        return AnthropicError(
            404,
            "not_found_error",
            f"model: {_clip_name(name)!r} is not known to cc-proxy; known aliases: "
            f"{', '.join(known_names(self.settings))} (any claude-* name maps to the session's "
            "main model)",
        )

    def _writer(self, request: web.Request, exchange: Exchange, *, hold: bool) -> StreamWriter:
        def record_error(error_type: str) -> None:
            exchange.error_type = error_type

        hold_until = exchange.started + (self.settings.commit_timeout if hold else 0.0)
        return StreamWriter(
            request,
            hold_until=hold_until,
            ping_interval=self.settings.ping_interval,
            on_error=record_error,
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
            for name in PASSTHROUGH_CLIENT_HEADERS:
                if name in request.headers:
                    headers[name] = request.headers[name]
        return headers

    # ---- upstream call with retries

    async def _open(
        self,
        exchange: Exchange,
        body: dict[str, Any],
        headers: Mapping[str, str],
        error_for: ErrorMapper,
        budget: _RetryBudget,
    ) -> UpstreamReply:
        """A 2xx upstream reply, retrying within `budget`; else ProxyError."""
        tool_choice_relaxed = False
        encoded = exact_json(body)
        while True:
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
                    and status in (400, 422)
                    and body.get("tool_choice") == "required"
                    and _ABOUT_TOOL_CHOICE.search(error.message)
                    and not error.message.startswith(_OVERFLOW_PREFIXES)
                ):
                    # WIRE.md C.8: some models crash on a forced tool choice; retry once
                    # with "auto" and keep doing so for this model.
                    tool_choice_relaxed = True
                    self.forced_tool_choice_rejected.add(exchange.upstream_model)
                    exchange.notes.append("tool_choice=required rejected; retried with auto")
                    body = {**body, "tool_choice": "auto"}
                    encoded = exact_json(body)
                    continue
            if error.retryable_upstream and await self._back_off(exchange, budget, error):
                continue
            raise ProxyError(error)

    async def _back_off(
        self, exchange: Exchange, budget: _RetryBudget, error: AnthropicError
    ) -> bool:
        """Wait before a proxy-side retry; False when the budget is spent, or the upstream asked
        for a wait long enough that Claude Code's own retry loop should own it."""
        if budget.used >= self.settings.max_retries:
            return False
        delay = retry_delay(
            budget.used, base_delay=self.settings.retry_base_delay, retry_after=error.retry_after
        )
        if delay is None:
            return False
        budget.take()
        log.info(
            "%s retrying upstream in %.2f s (%s: %s)",
            exchange.request_id,
            delay,
            error.type,
            error.message,
        )
        await asyncio.sleep(delay)
        return True

    async def _read_error(
        self, reply: UpstreamReply, error_for: ErrorMapper
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
        payload: Mapping[str, Any],
        headers: Mapping[str, str],
        route: _Route,
        fallbacks: tuple[ModelSpec, ...],
    ) -> web.Response:
        tried = 0
        while True:
            try:
                message = await self._complete_on(exchange, headers, route)
            except ProxyError as exc:
                following = self._next_route(exchange, payload, fallbacks, tried, exc.error)
                if following is None:
                    raise
                route, tried = following
                continue
            exchange.usage = usage_of(message)
            return web.Response(body=orjson.dumps(message), content_type="application/json")

    async def _complete_on(
        self, exchange: Exchange, headers: Mapping[str, str], route: _Route
    ) -> dict[str, Any]:
        """One model's complete answer; a drop or a transient error payload is retried."""
        budget = _RetryBudget(self.settings.max_retries)
        while True:
            reply = await self._open(exchange, route.body, headers, route.error_for, budget)
            try:
                raw = await self._read_reply(reply, exchange)
                exchange.mark_first_byte()
                return self._complete_message(raw, reply.is_event_stream, route, exchange)
            except ProxyError as exc:
                if not (
                    is_transient(exc.error) and await self._back_off(exchange, budget, exc.error)
                ):
                    raise

    def _complete_message(
        self, raw: bytes, is_event_stream: bool, route: _Route, exchange: Exchange
    ) -> dict[str, Any]:
        message_id = new_message_id()
        if not is_event_stream:
            completion = self._parse_completion(raw, route.context)
            return translate_completion(
                completion, route.context, message_id=message_id, new_tool_id=new_tool_id
            )
        # Some servers stream whatever was asked: fold the stream into one message.
        translator = StreamTranslator(route.context, message_id=message_id, new_tool_id=new_tool_id)
        accumulator = MessageAccumulator()
        try:
            events = self._translate_sse_body(raw, translator)
        except SSELineTooLong as exc:
            raise ProxyError(
                AnthropicError(502, "api_error", f"the upstream stream is malformed: {exc}")
            ) from None
        for event in events:
            accumulator.add(event)
        if translator.error is not None:
            raise ProxyError(translator.error)
        return accumulator.result()

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

    def _parse_completion(self, raw: bytes, context: ResponseContext) -> dict[str, Any]:
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
        error = payload_error(completion, context)
        if error is not None:
            raise ProxyError(error)
        return completion

    def _translate_sse_body(self, raw: bytes, translator: StreamTranslator) -> list[dict[str, Any]]:
        decoder = SSEDecoder()
        events = translator.start()
        for message in [*decoder.feed(raw), *decoder.flush()]:
            events += translator.feed_data(message.data)
            if translator.finished:
                return events
        return events + translator.finish(saw_done=False)

    # ---- streaming

    async def _stream(
        self,
        request: web.Request,
        exchange: Exchange,
        payload: Mapping[str, Any],
        headers: Mapping[str, str],
        route: _Route,
        fallbacks: tuple[ModelSpec, ...],
    ) -> web.StreamResponse:
        writer = self._writer(request, exchange, hold=True)
        message_id = new_message_id()
        tried = 0
        try:
            while True:
                error = await self._stream_on(writer, exchange, headers, route, message_id)
                if error is None:
                    break
                following = None
                if not writer.content_sent:
                    following = self._next_route(exchange, payload, fallbacks, tried, error)
                if following is None:
                    await writer.fail(error)  # ProxyError (plain HTTP error) if not committed
                    break
                route, tried = following
        except ConnectionResetError:
            # The client went away mid-stream; the attempt's own cleanup dropped the upstream.
            exchange.client_gone = True
            if writer.response is None:
                raise
        assert writer.response is not None
        return writer.response

    async def _stream_on(
        self,
        writer: StreamWriter,
        exchange: Exchange,
        headers: Mapping[str, str],
        route: _Route,
        message_id: str,
    ) -> AnthropicError | None:
        """Stream one model's answer; retried unseen while no content reached the client.
        None when complete, else the failure to report."""
        budget = _RetryBudget(self.settings.max_retries)
        while True:
            translator = StreamTranslator(
                route.context, message_id=message_id, new_tool_id=new_tool_id
            )
            writer.set_opening(translator.start()[0])
            error = await self._attempt(writer, exchange, route, headers, translator, budget)
            if error is None:
                exchange.usage = translator.usage
                return None
            if writer.content_sent or not is_transient(error):
                return error
            if not await self._back_off(exchange, budget, error):
                return error
            exchange.notes.append(f"retried unseen after: {error.message}")

    async def _attempt(
        self,
        writer: StreamWriter,
        exchange: Exchange,
        route: _Route,
        headers: Mapping[str, str],
        translator: StreamTranslator,
        budget: _RetryBudget,
    ) -> AnthropicError | None:
        opening = asyncio.ensure_future(
            self._open(exchange, route.body, headers, route.error_for, budget)
        )
        reply: UpstreamReply | None = None
        try:
            try:
                reply = await writer.wait(opening)
            except ProxyError as exc:
                return exc.error
            if reply.is_event_stream:
                return await self._pump_translated(reply, writer, translator, exchange)
            return await self._replay_json(reply, writer, translator, route.context, exchange)
        finally:
            await _discard(opening)
            if reply is None and not opening.cancelled() and opening.exception() is None:
                reply = opening.result()  # answered just as we were leaving: still close it
            if reply is not None:
                reply.close()

    async def _replay_json(
        self,
        reply: UpstreamReply,
        writer: StreamWriter,
        translator: StreamTranslator,
        context: ResponseContext,
        exchange: Exchange,
    ) -> AnthropicError | None:
        """The upstream answered a stream request with one JSON body: replay it as events."""
        reading = asyncio.ensure_future(self._read_reply(reply, exchange))
        try:
            raw = await writer.wait(reading)
            exchange.mark_first_byte()
            completion = self._parse_completion(raw, context)
        except ProxyError as exc:
            return exc.error
        finally:
            await _discard(reading)
        return await _send_translated(writer, translator, completion_events(translator, completion))

    async def _pump_translated(
        self,
        reply: UpstreamReply,
        writer: StreamWriter,
        translator: StreamTranslator,
        exchange: Exchange,
    ) -> AnthropicError | None:
        decoder = SSEDecoder()
        logged = _BodyLog(self.settings.log_bodies)
        try:
            async with contextlib.aclosing(self._chunks(reply, writer, exchange)) as chunks:
                async for data in chunks:
                    logged.add(data)
                    events: list[dict[str, Any]] = []
                    for message in decoder.feed(data):
                        events += translator.feed_data(message.data)
                        if translator.finished:
                            break
                    failure = await _send_translated(writer, translator, events)
                    if translator.finished:
                        return failure
        except UpstreamTimeout as exc:
            return timeout_error(str(exc))
        except SSELineTooLong as exc:
            return AnthropicError(502, "api_error", f"the upstream stream is malformed: {exc}")
        finally:
            logged.write(exchange.request_id)
        events = []
        for message in decoder.flush():
            events += translator.feed_data(message.data)
        # At EOF without `[DONE]`: complete after a finish_reason, a truncation error otherwise.
        events += translator.finish(saw_done=False)
        return await _send_translated(writer, translator, events)

    async def _chunks(
        self, reply: UpstreamReply, writer: StreamWriter, exchange: Exchange
    ) -> AsyncIterator[bytes]:
        """Upstream body pieces as they come, with the writer's commits and pings on time;
        raises UpstreamTimeout past the first-byte or read budget; ends quietly on EOF or a
        drop (the translator then decides between a complete message and a truncation)."""
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
                wake = min(deadline, writer.next_wake)
                done, _ = await asyncio.wait({pending}, timeout=max(wake - time.monotonic(), 0))
                if not done:
                    if time.monotonic() >= deadline:
                        raise UpstreamTimeout("data", budget)
                    await writer.tick()
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
                # Data may flow while the translator holds it back (tool arguments are
                # buffered): commit and ping on time all the same.
                await writer.tick()
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
                "input_tokens": estimate_tokens(payload),
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        return await self._deliver_message(request, exchange, message)

    # ---- pass-through (provider kind "anthropic")

    async def _passthrough(
        self, request: web.Request, exchange: Exchange, payload: dict[str, Any]
    ) -> web.StreamResponse:
        """Forward to an Anthropic-speaking upstream: only auth, the model name and logging
        change. No hold: such upstreams send their headers at once."""
        body = {**payload, "model": exchange.upstream_model}
        headers = self._upstream_headers(request, stream=exchange.stream, anthropic=True)
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

        budget = _RetryBudget(self.settings.max_retries)
        reply = await self._open(exchange, body, headers, error_for, budget)
        try:
            if reply.is_event_stream and exchange.stream:
                return await self._pump_passthrough(request, reply, exchange)
            raw = await self._read_reply(reply, exchange)
            exchange.mark_first_byte()
            message = fold_anthropic_sse(raw) if reply.is_event_stream else parse_message(raw)
            message["model"] = exchange.requested_model
            return await self._deliver_message(request, exchange, message)
        finally:
            reply.close()

    async def _deliver_message(
        self, request: web.Request, exchange: Exchange, message: dict[str, Any]
    ) -> web.StreamResponse:
        """A complete message, as JSON or replayed as events, whichever the client asked for."""
        exchange.usage = usage_of(message)
        if not exchange.stream:
            return web.Response(body=orjson.dumps(message), content_type="application/json")
        writer = self._writer(request, exchange, hold=False)
        await writer.send([message_start_event(message), *message_events(message)])
        assert writer.response is not None
        return writer.response

    async def _pump_passthrough(
        self, request: web.Request, reply: UpstreamReply, exchange: Exchange
    ) -> web.StreamResponse:
        writer = self._writer(request, exchange, hold=False)
        await writer.commit()
        decoder = SSEDecoder()
        rewriter = PassthroughRewriter(exchange.requested_model)
        logged = _BodyLog(self.settings.log_bodies)
        try:
            async with contextlib.aclosing(self._chunks(reply, writer, exchange)) as chunks:
                async for data in chunks:
                    logged.add(data)
                    out = b"".join(rewriter.frame(m) for m in decoder.feed(data))
                    if out:
                        await writer.send_raw(out)
            tail = b"".join(rewriter.frame(m) for m in decoder.flush())
            if tail:
                await writer.send_raw(tail)
            if not rewriter.complete:
                await writer.fail(AnthropicError(500, "api_error", "upstream stream truncated"))
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


async def _send_translated(
    writer: StreamWriter, translator: StreamTranslator, events: list[dict[str, Any]]
) -> AnthropicError | None:
    """Send what the translator made, but hold back its error event: the caller decides
    between an unseen retry, a fallback and telling the client."""
    if translator.error is None:
        await writer.send(events)
        return None
    await writer.send([event for event in events if event.get("type") != "error"])
    return translator.error


def _clip_name(name: str) -> str:
    """A client's model name as quoted back: an 8 MB name must not come back as 8 MB."""
    return name if len(name) <= 200 else name[:200] + "…"


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
