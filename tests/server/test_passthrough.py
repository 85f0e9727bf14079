"""Pass-through to an Anthropic-speaking upstream: a cut-off stream is an error, never a
complete message, and multi-line `data:` fields reach the client as valid SSE."""

from __future__ import annotations

from typing import Any

import anthropic
import orjson
import pytest

from cc_nemo.proxy.passthrough import PassthroughRewriter, fold_anthropic_sse
from cc_nemo.translate.errors import ErrorReply
from cc_nemo.translate.sse import MAX_EVENT_CHARS, SSEDecoder, SSEMessage
from tests.fake_upstream import Reply, anthropic_events
from tests.fixtures import MakeProxy

# The SDK warns about retired Claude model names; Claude Code still sends them.
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

USER = [{"role": "user", "content": "x"}]


def frame(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {orjson.dumps(event).decode()}\n\n"


def tool_events(partial_json: list[str], *, ended: bool = True) -> list[str]:
    """A tool_use answer, its input sent in the given fragments."""
    start = orjson.loads(anthropic_events("", model="m")[0].split("data: ", 1)[1])
    events: list[dict[str, Any]] = [
        start,
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "Write", "input": {}},
        },
        *(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": fragment},
            }
            for fragment in partial_json
        ),
    ]
    if ended:
        events += [
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {}},
            {"type": "message_stop"},
        ]
    return [frame(event) for event in events]


def test_a_whole_stream_folds_into_its_message() -> None:
    message = fold_anthropic_sse("".join(anthropic_events("hello", model="m")).encode())
    assert message["content"] == [{"type": "text", "text": "hello"}]
    assert message["stop_reason"] == "end_turn"


@pytest.mark.parametrize("kept", [2, 4, 5])
def test_a_stream_cut_before_message_delta_is_truncated_not_end_turn(kept: int) -> None:
    raw = "".join(anthropic_events("hello", model="m")[:kept]).encode()
    with pytest.raises(ErrorReply) as raised:
        fold_anthropic_sse(raw)
    error = raised.value.error
    assert (error.status, error.type, error.message) == (
        500,
        "api_error",
        "upstream stream truncated",
    )


def test_a_stream_cut_inside_a_tool_input_is_truncated_not_empty_input() -> None:
    raw = "".join(tool_events(['{"path": "a.py", ', '"content": "pri'], ended=False)).encode()
    with pytest.raises(ErrorReply) as raised:
        fold_anthropic_sse(raw)
    assert raised.value.error.type == "api_error"


def test_a_finished_stream_with_a_broken_tool_input_is_an_error() -> None:
    raw = "".join(tool_events(['{"path": "a.py", "con'])).encode()
    with pytest.raises(ErrorReply) as raised:
        fold_anthropic_sse(raw)
    assert (raised.value.error.status, raised.value.error.type) == (500, "api_error")


def test_a_whole_tool_input_is_parsed() -> None:
    message = fold_anthropic_sse("".join(tool_events(['{"path": ', '"a.py"}'])).encode())
    assert message["content"][0]["input"] == {"path": "a.py"}


def test_an_endless_line_is_an_api_error_not_unbounded_memory() -> None:
    raw = b"event: content_block_delta\ndata: " + b"x" * (MAX_EVENT_CHARS + 1)
    with pytest.raises(ErrorReply) as raised:
        fold_anthropic_sse(raw)
    assert raised.value.error.type == "api_error"
    assert "malformed" in raised.value.error.message


def test_multi_line_data_is_written_back_one_data_line_per_line() -> None:
    data = '{"type": "content_block_delta",\n"index": 0,\n"delta": {"type": "text_delta", "text": "hi"}}'
    out = PassthroughRewriter("claude-x").frame(SSEMessage("content_block_delta", data))
    assert out == (
        b'event: content_block_delta\ndata: {"type": "content_block_delta",\n'
        b'data: "index": 0,\ndata: "delta": {"type": "text_delta", "text": "hi"}}\n\n'
    )
    decoder = SSEDecoder()
    assert [*decoder.feed(out), *decoder.flush()] == [SSEMessage("content_block_delta", data)]


async def test_a_non_streaming_client_gets_an_error_for_a_truncated_upstream_stream(
    make_proxy: MakeProxy,
) -> None:
    proxy = await make_proxy(provider_kind="anthropic")
    proxy.fake.enqueue(Reply.stream(anthropic_events("cut short", model="m")[:4], done=False))
    async with proxy.client() as client:
        with pytest.raises(anthropic.InternalServerError) as raised:
            await client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=USER)
    assert raised.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert "truncated" in raised.value.message


async def test_a_non_streaming_client_gets_an_error_for_a_stream_ending_mid_tool_input(
    make_proxy: MakeProxy,
) -> None:
    proxy = await make_proxy(provider_kind="anthropic")
    chunks = tool_events(['{"command": ', '"rm -rf bu'], ended=False)
    proxy.fake.enqueue(Reply.stream(chunks, done=False))
    async with proxy.client() as client:
        with pytest.raises(anthropic.InternalServerError) as raised:
            await client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=USER)
    assert "truncated" in raised.value.message


async def test_a_streaming_client_reads_multi_line_data_from_the_upstream(
    make_proxy: MakeProxy,
) -> None:
    proxy = await make_proxy(provider_kind="anthropic")
    chunks = anthropic_events("", model="m")
    # The same text delta, its JSON spread over three `data:` lines (valid SSE, valid JSON).
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "multi"},
    }
    lines = orjson.dumps(delta).decode().replace(',"index"', ',\ndata: "index"')
    lines = lines.replace(',"delta"', ',\ndata: "delta"')
    chunks[3] = f"event: content_block_delta\ndata: {lines}\n\n"
    proxy.fake.enqueue(Reply.stream(chunks, done=False))
    async with (
        proxy.client() as client,
        client.messages.stream(model="claude-opus-4-8", max_tokens=50, messages=USER) as stream,
    ):
        message = await stream.get_final_message()
    assert message.content[0].text == "multi"  # type: ignore[union-attr]
    assert message.model == "claude-opus-4-8"


def _events_out(rewriter: PassthroughRewriter, chunks: list[str]) -> list[str]:
    decoder = SSEDecoder()
    out = b"".join(rewriter.frame(m) for chunk in chunks for m in decoder.feed(chunk.encode()))
    return [m.event for m in SSEDecoder().feed(out)]


def test_a_tool_blocks_stop_waits_for_the_upstreams_message_delta() -> None:
    chunks = tool_events(['{"command": ', '"ls"}'])
    rewriter = PassthroughRewriter("claude-x")
    # Up to the block's stop: the stop itself is held.
    assert _events_out(rewriter, chunks[:5])[-1] == "content_block_delta"
    # The message_delta releases the stop, in order, with it.
    assert _events_out(rewriter, chunks[5:6]) == ["content_block_stop", "message_delta"]
    assert _events_out(rewriter, chunks[6:]) == ["message_stop"]


def test_a_stream_failing_after_a_tool_blocks_stop_never_stops_the_block() -> None:
    chunks = tool_events(['{"command": "ls"}'])[:4]  # … the block's stop, then nothing
    rewriter = PassthroughRewriter("claude-x")
    assert "content_block_stop" not in _events_out(rewriter, chunks)
    assert rewriter.complete is False  # the proxy ends the body as truncated
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    assert _events_out(rewriter, [frame(error)]) == ["error"]


async def test_claude_code_never_sees_a_tool_block_stop_from_a_stream_that_then_drops(
    make_proxy: MakeProxy,
) -> None:
    """Claude Code runs a tool when its block stops; a drop after the stop would make it
    re-send the turn and run the tool twice."""
    proxy = await make_proxy(provider_kind="anthropic")
    chunks = tool_events(['{"command": "echo once"}'])
    proxy.fake.enqueue(Reply.stream(chunks[:4], drop_after=4, chunk_delay=0.05, done=False))
    async with proxy.client(default_headers={"x-app": "cli"}) as client:
        response = await client.messages.with_raw_response.create(
            model="claude-sonnet-4-5", max_tokens=50, messages=USER, stream=True
        )
        body = await response.http_response.aread()
    events = [m.event for m in SSEDecoder().feed(body)]
    assert "content_block_start" in events and "input_json_delta" in body.decode()
    assert "content_block_stop" not in events
    assert "message_stop" not in events
