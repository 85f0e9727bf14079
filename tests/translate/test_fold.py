"""Folding Anthropic events back into a message: one accumulator for ours and upstreams'."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cc_nemo.translate.errors import ErrorReply
from cc_nemo.translate.response import MessageAccumulator, fold_events

START = {
    "type": "message_start",
    "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 5, "output_tokens": 1}},
}  # fmt: skip


def test_an_error_event_becomes_the_error_to_answer_with() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    with pytest.raises(ErrorReply) as raised:
        fold_events([START, error])
    assert (raised.value.error.status, raised.value.error.type) == (529, "overloaded_error")


def test_a_stream_without_message_start_is_an_api_error() -> None:
    with pytest.raises(ErrorReply) as raised:
        fold_events([{"type": "message_stop"}])
    assert raised.value.error.status == 500


def test_folding_leaves_the_events_untouched() -> None:
    events = [
        START,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    ]
    message = fold_events(events)
    assert message["content"] == [{"type": "text", "text": "hi"}]
    assert message["usage"]["output_tokens"] == 2
    assert events[1]["content_block"] == {"type": "text", "text": ""}
    assert START["message"]["usage"]["output_tokens"] == 1
    assert START["message"]["content"] == []


def text_events(pieces: list[str]) -> list[dict[str, Any]]:
    return [
        START,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
            for p in pieces
        ),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {}},
        {"type": "message_stop"},
    ]


def test_forty_thousand_small_deltas_fold_in_linear_time() -> None:
    # `text = text + delta` copied the whole text per delta: seconds on the event loop.
    pieces = ["word " * 10] * 40_000
    events = text_events(pieces)
    started = time.perf_counter()
    message = fold_events(events)
    elapsed = time.perf_counter() - started
    assert message["content"][0]["text"] == "".join(pieces)
    assert elapsed < 0.5, f"folding 40 000 deltas took {elapsed:.2f} s"


def naive_fold(events: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The accumulator's definition: every delta appended to its block as it comes."""
    message: dict[str, Any] = {}
    blocks: list[dict[str, Any]] = []
    partial: dict[int, str] = {}
    for event in events:
        kind = event["type"]
        if kind == "message_start":
            message = {**event["message"], "usage": dict(event["message"]["usage"])}
        elif kind == "content_block_start":
            blocks.append(dict(event["content_block"]))
        elif kind == "content_block_delta" and event["index"] < len(blocks):
            block, delta = blocks[event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] = block.get("text", "") + delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial[event["index"]] = partial.get(event["index"], "") + delta["partial_json"]
        elif kind == "content_block_stop" and event["index"] in partial:
            text = partial.pop(event["index"])
            blocks[event["index"]]["input"] = orjson.loads(text) if text.strip() else {}
        elif kind == "message_delta":
            message.update(event["delta"])
    message["content"] = blocks
    message["stop_reason"] = message.get("stop_reason") or "end_turn"
    return message


_BLOCK_KINDS = {
    "text": ({"type": "text", "text": ""}, "text_delta", "text"),
    "thinking": (
        {"type": "thinking", "thinking": "", "signature": ""},
        "thinking_delta",
        "thinking",
    ),
    "tool_use": ({"type": "tool_use", "id": "t", "name": "f", "input": {}}, "input_json_delta", ""),
}


@st.composite
def event_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Blocks of every kind, with deltas interleaved between open blocks and stray indexes."""
    kinds = draw(st.lists(st.sampled_from(sorted(_BLOCK_KINDS)), max_size=4))
    events: list[dict[str, Any]] = [START]
    for index, kind in enumerate(kinds):
        opening, delta_type, field = _BLOCK_KINDS[kind]
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        if kind == "tool_use":
            value = draw(st.dictionaries(st.text(max_size=5), st.text(max_size=8), max_size=3))
            text = orjson.dumps(value).decode()
            cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=6)))
            pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
            deltas = [{"type": delta_type, "partial_json": p} for p in pieces]
        else:
            deltas = [{"type": delta_type, field: p} for p in draw(st.lists(st.text(max_size=6)))]
            if kind == "thinking":
                deltas.append({"type": "signature_delta", "signature": draw(st.text(max_size=4))})
        # Deltas for a block that never opened are dropped; tool JSON must stay whole.
        targets = [index] if kind == "tool_use" else [index, index, index, index + 7]
        for delta in deltas:
            target = draw(st.sampled_from(targets))
            events.append({"type": "content_block_delta", "index": target, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {}})
    events.append({"type": "message_stop"})
    return events


@settings(max_examples=200, deadline=None)
@given(events=event_streams())
def test_the_fold_equals_appending_each_delta_as_it_comes(events: list[dict[str, Any]]) -> None:
    assert fold_events(events) == naive_fold(events)


def test_a_tool_input_cut_off_mid_json_is_an_error_not_an_empty_input() -> None:
    events = [
        START,
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "tool_use", "id": "t", "name": "Write", "input": {}}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "input_json_delta", "partial_json": '{"path": "a.py", "con'}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {}},
        {"type": "message_stop"},
    ]  # fmt: skip
    with pytest.raises(ErrorReply) as raised:
        fold_events(events)
    assert (raised.value.error.status, raised.value.error.type) == (500, "api_error")
    assert "tool input" in raised.value.error.message


def test_the_accumulator_knows_whether_the_message_ended() -> None:
    accumulator = MessageAccumulator()
    for event in text_events(["a"])[:-2]:
        accumulator.add(event)
    assert not accumulator.ended
    accumulator.add({"type": "message_delta", "delta": {"stop_reason": "end_turn"}})
    assert accumulator.ended
