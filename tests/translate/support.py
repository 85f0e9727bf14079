"""Shared test helpers: build contexts, drive the stream translator from raw SSE bytes, and
check event sequences the way the official Anthropic SDK consumes them."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import orjson
import pydantic
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent

from cc_nemo.settings.catalog import BUILTIN_MODELS, ModelQuirks, ModelSpec
from cc_nemo.translate import (
    ResponseContext,
    SSEDecoder,
    StreamTranslator,
    translate_request,
)

ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]+$")
_EVENT_ADAPTER: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RawMessageStreamEvent)
_BLOCK_DELTAS = {
    "text": {"text_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
}
STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"}


def builtin(alias: str) -> ModelSpec:
    return next(spec for spec in BUILTIN_MODELS if spec.alias == alias)


PLAIN = ModelSpec("plain", "plain-model", 128_000, 16_384)


def spec_with(**quirks: Any) -> ModelSpec:
    """The plain spec with some quirks switched on."""
    return replace(PLAIN, quirks=replace(ModelQuirks(), **quirks))


def context(
    spec: ModelSpec = PLAIN,
    *,
    tools: Sequence[str] = (),
    name_map: Mapping[str, str] | None = None,
    stop_sequences: Sequence[str] = (),
    forced_tool: bool = False,
    disable_parallel: bool = False,
    prefill: str = "",
    estimated_input: int = 100,
) -> ResponseContext:
    return ResponseContext(
        requested_model="claude-test",
        spec=spec,
        tool_name_map=dict(name_map or {name: name for name in tools}),
        offered_tools=tuple(tools),
        stop_sequences=tuple(stop_sequences),
        estimated_input_tokens=estimated_input,
        forced_tool=forced_tool,
        thinking_enabled=True,
        disable_parallel_tool_use=disable_parallel,
        prefill=prefill,
    )


def counter_ids(prefix: str = "toolu_") -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"{prefix}{next(numbers):024d}"


def translator(ctx: ResponseContext) -> StreamTranslator:
    return StreamTranslator(ctx, message_id="msg_test", new_tool_id=counter_ids())


def run_chunks(
    chunks: Iterable[Mapping], ctx: ResponseContext | None = None, *, done: bool = True
) -> list[dict]:
    """Feed parsed chunks straight in (no SSE framing)."""
    stream = translator(ctx or context())
    events = stream.start()
    for chunk in chunks:
        events += stream.feed(chunk)
    events += stream.finish(saw_done=done)
    return events


def render_sse(chunks: Iterable[Mapping], *, done: bool = True, newline: bytes = b"\n") -> bytes:
    """OpenAI-style upstream SSE bytes for these chunks."""
    frames = [b"data: " + orjson.dumps(chunk) + newline + newline for chunk in chunks]
    if done:
        frames.append(b"data: [DONE]" + newline + newline)
    return b"".join(frames)


def run_sse_bytes(pieces: Iterable[bytes], ctx: ResponseContext | None = None) -> list[dict]:
    """What the server does: decode bytes as they arrive, translate, finish at [DONE] or EOF."""
    decoder = SSEDecoder()
    stream = translator(ctx or context())
    events = stream.start()

    def consume(messages: Iterable[Any]) -> None:
        nonlocal events
        for message in messages:
            if stream.finished:
                return
            events += stream.feed_data(message.data)

    for piece in pieces:
        consume(decoder.feed(piece))
    consume(decoder.flush())
    events += stream.finish(saw_done=False)
    return events


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({cut for cut in cuts if 0 < cut < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def assert_valid_stream(events: Sequence[Mapping]) -> None:
    """docs/architecture.md, invariant 1, checked event by event."""
    assert events, "no events"
    assert events[0]["type"] == "message_start"
    assert sum(1 for e in events if e["type"] == "message_start") == 1
    open_index: int | None = None
    kinds: dict[int, str] = {}
    json_text: dict[int, str] = {}
    next_index = 0
    for position, event in enumerate(events[1:], start=1):
        kind = event["type"]
        is_last = position == len(events) - 1
        if kind == "content_block_start":
            assert open_index is None, "a block started while another is open"
            assert event["index"] == next_index, "indices must be dense and in order"
            kinds[next_index] = event["content_block"]["type"]
            open_index = next_index
            next_index += 1
        elif kind == "content_block_delta":
            assert event["index"] == open_index, "delta into a block that is not open"
            delta = event["delta"]
            assert delta["type"] in _BLOCK_DELTAS[kinds[open_index]], "delta of the wrong kind"
            if delta["type"] == "text_delta":
                assert delta["text"], "empty text delta"
            if delta["type"] == "thinking_delta":
                assert delta["thinking"], "empty thinking delta"
            if delta["type"] == "input_json_delta":
                json_text[open_index] = json_text.get(open_index, "") + delta["partial_json"]
        elif kind == "content_block_stop":
            assert event["index"] == open_index
            if kinds[open_index] == "tool_use":
                assert isinstance(orjson.loads(json_text.get(open_index) or "{}"), dict)
            open_index = None
        elif kind == "message_delta":
            assert open_index is None, "message_delta with a block still open"
            assert event["delta"]["stop_reason"] in STOP_REASONS
            assert events[position + 1]["type"] == "message_stop"
            assert position + 1 == len(events) - 1, "message_stop must be the last event"
        elif kind == "message_stop":
            assert is_last and events[position - 1]["type"] == "message_delta"
        elif kind == "error":
            assert is_last, "nothing may follow an error event"
        else:
            raise AssertionError(f"unexpected event {kind}")
    assert events[-1]["type"] in ("message_stop", "error")
    for block_index, block_kind in kinds.items():
        if block_kind == "tool_use":
            start = next(
                e
                for e in events
                if e["type"] == "content_block_start" and e["index"] == block_index
            )
            assert ID_PATTERN.match(start["content_block"]["id"])


def sdk_accumulate(events: Sequence[Mapping]) -> dict:
    """Run the events through the official SDK's accumulator; returns the final snapshot."""
    snapshot = None
    buffers: dict[int, bytes] = {}
    for event in events:
        if event["type"] == "error":
            raise AssertionError(f"stream ended in error: {event['error']}")
        typed = _EVENT_ADAPTER.validate_python(event)
        snapshot = accumulate_event(event=typed, current_snapshot=snapshot, json_bufs=buffers)
    assert snapshot is not None
    return snapshot.model_dump(exclude_none=True)


def blocks(events: Sequence[Mapping]) -> list[tuple[str, str]]:
    """(kind, text) per content block, for compact assertions."""
    out: list[tuple[str, str]] = []
    for event in events:
        if event["type"] == "content_block_start":
            block = event["content_block"]
            kind = f"tool_use:{block['name']}" if block["type"] == "tool_use" else block["type"]
            out.append((kind, ""))
        elif event["type"] == "content_block_delta":
            delta = event["delta"]
            text = delta.get("text") or delta.get("thinking") or delta.get("partial_json") or ""
            kind, so_far = out[-1]
            out[-1] = (kind, so_far + text)
    return out


def final_delta(events: Sequence[Mapping]) -> Mapping:
    return next(e for e in events if e["type"] == "message_delta")


def translate(request: Mapping, spec: ModelSpec = PLAIN) -> Any:
    return translate_request(request, spec, upstream_model=spec.model)
