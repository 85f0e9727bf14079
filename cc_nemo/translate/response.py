"""OpenAI chat.completion → Anthropic Message (docs/wire.md, "Response translation").

Built by running the completion through the stream state machine and folding its events,
so a non-streamed reply is, by construction, the same message a streamed one would be.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from cc_nemo.translate.errors import AnthropicError, ErrorReply
from cc_nemo.translate.request import ResponseContext
from cc_nemo.translate.stream import StreamTranslator, payload_error


def translate_completion(
    completion: Mapping, ctx: ResponseContext, *, message_id: str, new_tool_id: Callable[[], str]
) -> dict:
    """The Anthropic Message for one non-streamed completion; raises ErrorReply."""
    completion = _unwrap_envelope(completion)
    error = payload_error(completion, ctx)
    if error is not None:
        raise ErrorReply(error)
    translator = StreamTranslator(ctx, message_id=message_id, new_tool_id=new_tool_id)
    return fold_events(completion_events(translator, completion))


def completion_events(translator: StreamTranslator, completion: Mapping) -> list[dict]:
    """A whole completion run through a stream translator: every event still to send, up to
    message_stop (nothing is repeated if message_start already went out)."""
    events = translator.start()
    events += translator.feed(completion_as_chunk(_unwrap_envelope(completion)))
    return events + translator.finish(saw_done=True)


def completion_as_chunk(completion: Mapping) -> dict:
    """A whole completion as one stream chunk (its message as the delta)."""
    choices = completion.get("choices")
    chunk: dict[str, Any] = {"choices": [], "usage": completion.get("usage")}
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, Mapping):
            message = choice.get("delta") if isinstance(choice.get("delta"), Mapping) else {}
        delta = dict(message)
        tool_calls = message.get("tool_calls")
        if isinstance(tool_calls, list):
            # Whole calls: each gets its own index so none is mistaken for a fragment of another.
            delta["tool_calls"] = [
                {**call, "index": position}
                for position, call in enumerate(tool_calls)
                if isinstance(call, Mapping)
            ]
        chunk["choices"] = [
            {
                "index": 0,
                "delta": delta,
                "finish_reason": choice.get("finish_reason"),
                "stop_reason": choice.get("stop_reason"),
            }
        ]
    return chunk


def fold_events(events: Iterable[Mapping]) -> dict:
    """The Message a sequence of Anthropic stream events describes."""
    accumulator = MessageAccumulator()
    for event in events:
        accumulator.add(event)
    return accumulator.result()


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


class MessageAccumulator:
    """Folds Anthropic stream events back into one message, as the SDK does: ours, or an
    Anthropic-speaking upstream's (so it tolerates gaps and carries error events).

    Text, thinking and tool-input fragments are collected as lists and joined once when the
    block stops or the message is read: appending to a str per delta is quadratic, and a long
    answer has tens of thousands of deltas folded on the event loop."""

    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        # message_delta or message_stop arrived: the upstream said the message is over.
        self.ended = False
        self._blocks: list[dict[str, Any]] = []
        # (block index, field) → fragments; the first one is the field's value before them.
        self._parts: dict[tuple[int, str], list[str]] = {}
        self._json: dict[int, list[str]] = {}
        self._invalid_input: int | None = None

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
            self._close_block(int(event["index"]))
        elif kind == "message_delta" and self.message is not None:
            self.ended = True
            self.message.update(event.get("delta") or {})
            self.message["usage"].update(event.get("usage") or {})
        elif kind == "message_stop":
            self.ended = True
        elif kind == "error":
            self.error = dict(event.get("error") or {})

    def _apply_delta(self, index: int, delta: Mapping[str, Any]) -> None:
        if index >= len(self._blocks):
            return
        kind = delta.get("type")
        if kind == "text_delta":
            self._append(index, "text", delta.get("text", ""))
        elif kind == "thinking_delta":
            self._append(index, "thinking", delta.get("thinking", ""))
        elif kind == "signature_delta":
            self._blocks[index]["signature"] = delta.get("signature", "")
        elif kind == "input_json_delta":
            self._json.setdefault(index, []).append(delta.get("partial_json", ""))

    def _append(self, index: int, field: str, text: str) -> None:
        parts = self._parts.get((index, field))
        if parts is None:
            parts = self._parts[(index, field)] = [self._blocks[index].get(field, "")]
        parts.append(text)

    def _close_block(self, index: int) -> None:
        for field in ("text", "thinking"):
            parts = self._parts.pop((index, field), None)
            if parts is not None:
                self._blocks[index][field] = "".join(parts)
        fragments = self._json.pop(index, None)
        if fragments is None or index >= len(self._blocks):
            return
        text = "".join(fragments)
        try:
            self._blocks[index]["input"] = orjson.loads(text) if text.strip() else {}
        except orjson.JSONDecodeError:
            # A cut-off tool input must not become `{}` (a call with no arguments) silently.
            if self._invalid_input is None:
                self._invalid_input = index

    def result(self) -> dict[str, Any]:
        """The message; ErrorReply for an error event, a stream that never started
        or a tool input that is not valid JSON."""
        if self.error is not None:
            kind = str(self.error.get("type") or "api_error")
            raise ErrorReply(
                AnthropicError(
                    STATUS_FOR_ERROR_TYPE.get(kind, 500), kind, str(self.error.get("message", ""))
                )
            )
        if self.message is None:
            raise ErrorReply(
                AnthropicError(500, "api_error", "the upstream stream ended before a message")
            )
        for index, _field in list(self._parts):
            self._close_block(index)
        for index in list(self._json):
            self._close_block(index)
        if self._invalid_input is not None:
            raise ErrorReply(
                AnthropicError(
                    500,
                    "api_error",
                    f"the upstream's tool input (content block {self._invalid_input}) "
                    "is not valid JSON",
                )
            )
        self.message["content"] = self._blocks
        if not self.message.get("stop_reason"):
            self.message["stop_reason"] = "end_turn"
        return self.message


def _unwrap_envelope(completion: Mapping) -> Mapping:
    """Workers AI's v4 envelope: {"result": <completion>, "success": true}."""
    result = completion.get("result")
    if completion.get("success") is True and isinstance(result, Mapping) and "choices" in result:
        return result
    return completion
