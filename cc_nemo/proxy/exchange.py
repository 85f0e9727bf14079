"""The `/v1/messages` exchange: route the model, translate, call the upstream, answer.

Streamed answers follow the commit rule (streaming.py, stream_writer.py); whole answers are
retried here while the upstream fails transiently; pass-through providers go to passthrough.py.
When a model stays out of capacity after the retries, its configured fallbacks answer the same
request, each translated for its own limits (docs/architecture.md, "Fallbacks").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from cc_nemo.proxy.bodies import clip_body, parse_json_body, read_body
from cc_nemo.proxy.calls import UpstreamCalls
from cc_nemo.proxy.ids import new_message_id, new_tool_id
from cc_nemo.proxy.passthrough import PASSTHROUGH_CLIENT_HEADERS, answer_passthrough
from cc_nemo.proxy.record import Exchange, Route
from cc_nemo.proxy.replies import deliver_message, parse_completion, usage_of
from cc_nemo.proxy.routing import known_names, model_for_request
from cc_nemo.proxy.stream_writer import writer_for
from cc_nemo.proxy.streaming import TranslatedStream
from cc_nemo.settings.catalog import ModelSpec
from cc_nemo.translate.errors import (
    AnthropicError,
    ErrorReply,
    invalid_request,
    is_transient,
    map_upstream_error,
)
from cc_nemo.translate.request import (
    CheckedRequest,
    InvalidRequest,
    check_request,
    translate_request,
)
from cc_nemo.translate.response import MessageAccumulator, translate_completion
from cc_nemo.translate.sse import SSEDecoder, SSELineTooLong
from cc_nemo.translate.stream import StreamTranslator
from cc_nemo.translate.tokens import estimate_tokens
from cc_nemo.translate.usage import Usage, usage_from_openai

log = logging.getLogger("cc_nemo.proxy.exchange")

# A client's model name as quoted back in an error: an 8 MB name must not come back as 8 MB.
MAX_QUOTED_NAME = 200
# Model names whose route is remembered (the settings never change while the proxy runs):
# Claude Code sends two or three names, each walking the catalog otherwise.
MAX_REMEMBERED_ROUTES = 64
MAX_REMEMBERED_NAME = 256


_UNKNOWN = object()


class MessagesRelay:
    """Serves POST /v1/messages for one proxy session."""

    def __init__(self, calls: UpstreamCalls) -> None:
        self.calls = calls
        self.settings = calls.settings
        self._specs: dict[str, ModelSpec | None] = {}

    async def handle(self, request: web.Request, exchange: Exchange) -> web.StreamResponse:
        raw = await read_body(request)
        payload = parse_json_body(raw)
        if isinstance(payload, dict) and isinstance(payload.get("model"), str):
            exchange.requested_model = payload["model"]  # for the log line, even if invalid
        try:
            # Validated once; the check's tool keys serve every translation of it.
            checked = check_request(payload)
        except InvalidRequest as exc:
            raise ErrorReply(invalid_request(str(exc))) from None
        if self.settings.log_bodies:
            log.info("%s client request: %s", exchange.request_id, clip_body(raw))
        del raw  # not kept while the answer streams, maybe for minutes
        exchange.requested_model = payload["model"]
        exchange.stream = payload.get("stream") is True
        spec = self._spec_for(payload["model"])
        if spec is None:
            raise ErrorReply(self._model_not_found(payload["model"]))
        self._use(exchange, spec)

        if payload["max_tokens"] == 0:
            return await self._empty_reply(request, exchange, payload)
        if self.settings.provider.kind == "anthropic":
            headers = self._upstream_headers(request, stream=exchange.stream, anthropic=True)
            return await answer_passthrough(request, exchange, payload, self.calls, headers)

        route = self._route(checked, spec)
        fallbacks = _Fallbacks(self, exchange, checked, self.settings.fallbacks_for(spec))
        headers = self._upstream_headers(request, stream=exchange.stream)
        if exchange.stream:
            writer = writer_for(request, exchange, self.settings, hold=True)
            try:
                await TranslatedStream(self.calls, writer, exchange, headers).run(
                    route, fallbacks.after
                )
            except ConnectionResetError:
                # The client went away mid-stream; the attempt's own cleanup dropped the upstream.
                exchange.client_gone = True
                if writer.response is None:
                    raise
            if writer.content_sent:
                fallbacks.answered()
            assert writer.response is not None
            return writer.response
        return await self._complete(exchange, headers, route, fallbacks)

    # ---- routing

    def _spec_for(self, name: str) -> ModelSpec | None:
        spec = self._specs.get(name, _UNKNOWN)
        if spec is _UNKNOWN:
            spec = model_for_request(self.settings, name)
            if len(self._specs) < MAX_REMEMBERED_ROUTES and len(name) <= MAX_REMEMBERED_NAME:
                self._specs[name] = spec
        return spec  # type: ignore[return-value]

    def _use(self, exchange: Exchange, spec: ModelSpec) -> None:
        exchange.spec = spec
        exchange.upstream_model = self.settings.provider.upstream_model_id(spec.model)

    def _route(self, checked: CheckedRequest, spec: ModelSpec) -> Route:
        """The request translated for `spec`'s limits and quirks; ErrorReply if it can't be."""
        upstream_model = self.settings.provider.upstream_model_id(spec.model)
        try:
            translated = translate_request(checked, spec, upstream_model=upstream_model)
        except InvalidRequest as exc:
            raise ErrorReply(invalid_request(str(exc))) from None
        body = translated.to_send
        if (
            body.get("tool_choice") == "required"
            and upstream_model in self.calls.forced_tool_choice_rejected
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

        return Route(spec, upstream_model, body, context, error_for)

    def _model_not_found(self, name: str) -> AnthropicError:
        quoted = name if len(name) <= MAX_QUOTED_NAME else name[:MAX_QUOTED_NAME] + "…"
        return AnthropicError(
            404,
            "not_found_error",
            f"model: {quoted!r} is not known to cc-proxy; known aliases: "
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
            for name in PASSTHROUGH_CLIENT_HEADERS:
                if name in request.headers:
                    headers[name] = request.headers[name]
        return headers

    # ---- whole answers

    async def _complete(
        self,
        exchange: Exchange,
        headers: Mapping[str, str],
        route: Route,
        fallbacks: _Fallbacks,
    ) -> web.Response:
        while True:
            try:
                message, usage = await self._complete_with(exchange, headers, route)
            except ErrorReply as exc:
                following = fallbacks.after(exc.error)
                if following is None:
                    raise
                route = following
                continue
            fallbacks.answered()
            exchange.usage = usage
            return web.Response(body=orjson.dumps(message), content_type="application/json")

    async def _complete_with(
        self, exchange: Exchange, headers: Mapping[str, str], route: Route
    ) -> tuple[dict[str, Any], Usage]:
        """One model's complete answer; a drop or a transient error payload is retried."""
        budget = self.calls.budget()
        while True:
            reply = await self.calls.open(exchange, route.body, headers, route.error_for, budget)
            try:
                raw = await self.calls.read_reply(reply, exchange)
                exchange.mark_first_byte()
                return _whole_message(raw, reply.is_event_stream, route)
            except ErrorReply as exc:
                if not is_transient(exc.error):
                    raise
                if not await self.calls.back_off(exchange, budget, exc.error):
                    raise

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
        return await deliver_message(request, exchange, self.settings, message)


class _Fallbacks:
    """The models that answer, in order, when one stays out of capacity (or unreachable)
    after the proxy's retries; a fallback that cannot take the request is skipped."""

    def __init__(
        self,
        relay: MessagesRelay,
        exchange: Exchange,
        checked: CheckedRequest,
        specs: tuple[ModelSpec, ...],
    ) -> None:
        self._relay = relay
        self._exchange = exchange
        self._checked = checked
        self._specs = list(specs)
        self._trying: ModelSpec | None = None
        # The alias the request asked for, once a fallback stands in for it.
        self._original: str | None = None

    def after(self, error: AnthropicError) -> Route | None:
        if error.type != "overloaded_error":
            return None
        exchange = self._exchange
        while self._specs:
            spec = self._specs.pop(0)
            try:
                route = self._relay._route(self._checked, spec)
            except ErrorReply as exc:
                exchange.notes.append(f"fallback {spec.alias} skipped: {exc.error.message}")
                continue
            original = self._original or (exchange.spec.alias if exchange.spec else "")
            log.warning(
                "%s %s out of capacity after retries (%s); falling back to %s",
                exchange.request_id,
                original,
                error.message,
                spec.alias,
            )
            self._original = original
            self._trying = spec
            self._relay._use(exchange, spec)
            return route
        return None

    def answered(self) -> None:
        """The route in use answered: the note says which fallback did, if one did (a fallback
        that is out of capacity too answers nothing)."""
        if self._trying is not None and self._original:
            # The record's fallback_from (and so its answered_by) is set only now.
            self._exchange.fallback_from = self._original
            self._exchange.notes.append(
                f"answered by {self._trying.alias}: {self._original} out of capacity"
            )


def _whole_message(raw: bytes, is_event_stream: bool, route: Route) -> tuple[dict[str, Any], Usage]:
    """An upstream's whole answer as one Anthropic message, and its usage with the reasoning
    tokens the message has no field for; ErrorReply if it is an error."""
    message_id = new_message_id()
    if not is_event_stream:
        completion = parse_completion(raw, route.context)
        message = translate_completion(
            completion, route.context, message_id=message_id, new_tool_id=new_tool_id
        )
        upstream = usage_from_openai(completion.get("usage"), fallback_input=0, fallback_output=0)
        return message, replace(usage_of(message), reasoning_tokens=upstream.reasoning_tokens)
    # Some servers stream whatever was asked: fold the stream into one message.
    translator = StreamTranslator(route.context, message_id=message_id, new_tool_id=new_tool_id)
    decoder = SSEDecoder()
    try:
        messages = [*decoder.feed(raw), *decoder.flush()]
    except SSELineTooLong as exc:
        raise ErrorReply(
            AnthropicError(502, "api_error", f"the upstream stream is malformed: {exc}")
        ) from None
    accumulator = MessageAccumulator()
    events = translator.start()
    for message in messages:
        events += translator.feed_data(message.data)
        if translator.finished:
            break
    events += translator.finish(saw_done=False)
    for event in events:
        accumulator.add(event)
    if translator.error is not None:
        raise ErrorReply(translator.error)
    return accumulator.result(), translator.usage
