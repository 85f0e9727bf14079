"""Pass-through for upstreams that already speak Anthropic Messages (provider kind "anthropic"):
only the model name (and auth, set by the caller) changes on the way; pure helpers."""

from __future__ import annotations

from typing import Any

import orjson

from cc_nemo.proxy.replies import ProxyError, usage_of
from cc_nemo.translate.errors import AnthropicError, map_upstream_error
from cc_nemo.translate.response import MessageAccumulator
from cc_nemo.translate.sse import (
    SSEDecoder,
    SSELineTooLong,
    SSEMessage,
    encode_event,
    encode_message,
)
from cc_nemo.translate.stream import TRUNCATED_MESSAGE
from cc_nemo.translate.usage import Usage

# Client headers an Anthropic-speaking upstream needs to see (never the client's auth).
PASSTHROUGH_CLIENT_HEADERS = ("anthropic-version", "anthropic-beta")


_UNTOUCHED_EVENTS = frozenset(
    {"content_block_start", "content_block_delta", "content_block_stop", "ping"}
)


def _parse_event(data: str) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


class PassthroughRewriter:
    """Re-frames an Anthropic stream unchanged except `message_start`'s model; tracks usage."""

    def __init__(self, requested_model: str) -> None:
        self._requested_model = requested_model
        self._usage: dict[str, int] = {}
        self.complete = False
        self.error_type: str | None = None

    def frame(self, message: SSEMessage) -> bytes:
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
    """A non-streaming Anthropic reply; its error, or an unexpected body, as ProxyError."""
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


def fold_anthropic_sse(raw: bytes) -> dict[str, Any]:
    """An Anthropic stream received whole (for a non-streaming client) as one message.

    ProxyError (500 api_error) when the stream stops before message_delta/message_stop: a
    cut-off answer must not reach the client as a complete `end_turn` message. The upstream's
    own error event, or a tool input that is not valid JSON, raises UpstreamErrorPayload."""
    decoder = SSEDecoder()
    accumulator = MessageAccumulator()
    try:
        messages = [*decoder.feed(raw), *decoder.flush()]
    except SSELineTooLong as exc:
        # Worded and numbered as the relay answers the same fault on a translated stream.
        raise ProxyError(
            AnthropicError(502, "api_error", f"the upstream stream is malformed: {exc}")
        ) from None
    for message in messages:
        event = _parse_event(message.data)
        if isinstance(event, dict):
            accumulator.add(event)
    if accumulator.error is None and accumulator.message is not None and not accumulator.ended:
        raise ProxyError(AnthropicError(500, "api_error", TRUNCATED_MESSAGE))
    return accumulator.result()
