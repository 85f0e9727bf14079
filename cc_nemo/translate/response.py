"""OpenAI chat.completion → Anthropic Message (WIRE.md D.3).

Built by running the completion through the stream state machine and folding its events,
so a non-streamed reply is, by construction, the same message a streamed one would be.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from cc_nemo.translate.errors import AnthropicError
from cc_nemo.translate.request import ResponseContext
from cc_nemo.translate.stream import StreamTranslator, payload_error


class UpstreamErrorPayload(Exception):
    """A 200 response whose body is an error, not a completion; answer with `.error`."""

    def __init__(self, error: AnthropicError) -> None:
        super().__init__(error.message)
        self.error = error


def translate_completion(
    completion: Mapping, ctx: ResponseContext, *, message_id: str, new_tool_id: Callable[[], str]
) -> dict:
    """The Anthropic Message for one non-streamed completion; raises UpstreamErrorPayload."""
    completion = _unwrap_envelope(completion)
    error = payload_error(completion, ctx)
    if error is not None:
        raise UpstreamErrorPayload(error)
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
    """Accumulate Anthropic stream events into the Message they describe (as the SDK does)."""
    message: dict[str, Any] | None = None
    json_buffers: dict[int, str] = {}
    for event in events:
        kind = event.get("type")
        if kind == "message_start":
            message = copy.deepcopy(dict(event["message"]))
            message["content"] = []
        elif message is None:
            continue
        elif kind == "content_block_start":
            message["content"].append(copy.deepcopy(dict(event["content_block"])))
        elif kind == "content_block_delta":
            _apply_delta(message["content"][event["index"]], event["delta"], json_buffers, event)
        elif kind == "content_block_stop":
            block = message["content"][event["index"]]
            if block.get("type") == "tool_use":
                text = json_buffers.pop(event["index"], "")
                block["input"] = orjson.loads(text) if text else {}
        elif kind == "message_delta":
            message["stop_reason"] = event["delta"].get("stop_reason")
            message["stop_sequence"] = event["delta"].get("stop_sequence")
            message["usage"].update(
                {k: v for k, v in event.get("usage", {}).items() if v is not None}
            )
    if message is None:
        raise ValueError("no message_start event")
    return message


def _apply_delta(
    block: dict[str, Any], delta: Mapping, json_buffers: dict[int, str], event: Mapping
) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] += delta["text"]
    elif kind == "thinking_delta":
        block["thinking"] += delta["thinking"]
    elif kind == "signature_delta":
        block["signature"] = delta["signature"]
    elif kind == "input_json_delta":
        index = event["index"]
        json_buffers[index] = json_buffers.get(index, "") + delta["partial_json"]


def _unwrap_envelope(completion: Mapping) -> Mapping:
    """Workers AI's v4 envelope: {"result": <completion>, "success": true}."""
    result = completion.get("result")
    if completion.get("success") is True and isinstance(result, Mapping) and "choices" in result:
        return result
    return completion
