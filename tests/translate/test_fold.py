"""Folding Anthropic events back into a message: one accumulator for ours and upstreams'."""

from __future__ import annotations

import pytest

from cc_nemo.translate.response import UpstreamErrorPayload, fold_events

START = {
    "type": "message_start",
    "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 5, "output_tokens": 1}},
}  # fmt: skip


def test_an_error_event_becomes_the_error_to_answer_with() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    with pytest.raises(UpstreamErrorPayload) as raised:
        fold_events([START, error])
    assert (raised.value.error.status, raised.value.error.type) == (529, "overloaded_error")


def test_a_stream_without_message_start_is_an_api_error() -> None:
    with pytest.raises(UpstreamErrorPayload) as raised:
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
