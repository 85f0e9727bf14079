"""The commit rule: hold the status line until the upstream's first content, retry unseen until
content reached the client, then report transient failures as `overloaded_error` events."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest

from cc_nemo.translate.sse import SSEDecoder
from tests.fake_upstream import (
    CAPACITY_ERROR,
    Reply,
    cf_error,
    chunk,
    completion,
    text_stream,
)
from tests.fixtures import MakeProxy, ProxyUnderTest

MODEL = "claude-sonnet-5"
REQUEST = {
    "model": MODEL,
    "max_tokens": 200,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}
# A first chunk that carries no content: Workers AI often opens with the role alone.
ROLE_ONLY = chunk({"role": "assistant", "content": ""})


async def raw_stream(
    proxy: ProxyUnderTest, headers: dict[str, str] | None = None
) -> tuple[int, float, list[tuple[float, str, Any]]]:
    """(status, seconds to the status line, [(seconds, event, payload)]) of one stream request."""
    started = time.monotonic()
    events: list[tuple[float, str, Any]] = []
    decoder = SSEDecoder()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/messages?beta=true",
            json=REQUEST,
            headers={**proxy.auth_headers(), **(headers or {})},
        ) as response,
    ):
        headers_at = time.monotonic() - started
        if response.status != 200:
            return response.status, headers_at, [(headers_at, "http", await response.json())]
        async for data in response.content.iter_any():
            for message in decoder.feed(data):
                events.append(
                    (time.monotonic() - started, message.event or "", orjson.loads(message.data))
                )
    return response.status, headers_at, events


def names(events: list[tuple[float, str, Any]]) -> list[str]:
    return [name for _, name, _ in events]


def text_of(events: list[tuple[float, str, Any]]) -> str:
    return "".join(
        payload["delta"].get("text", "")
        for _, name, payload in events
        if name == "content_block_delta"
    )


async def test_status_line_waits_for_a_slow_upstream_and_costs_one_request(
    make_proxy: MakeProxy,
) -> None:
    proxy = await make_proxy(commit_timeout=10.0, ping_interval=0.2)
    proxy.fake.enqueue(Reply.stream(text_stream("slow but sure"), delay=1.0))
    status, headers_at, events = await raw_stream(proxy)
    assert status == 200
    assert headers_at >= 0.9, "nothing is committed before the upstream answers"
    assert names(events)[0] == "message_start"
    assert "ping" not in names(events)
    assert text_of(events) == "slow but sure"
    assert len(proxy.fake.requests) == 1


async def test_failure_during_the_hold_is_a_plain_http_error_with_retry_after(
    make_proxy: MakeProxy,
) -> None:
    proxy = await make_proxy(commit_timeout=10.0, max_retries=0)
    proxy.fake.enqueue(
        Reply.error(429, cf_error(3021, "Rate limited"), {"Retry-After": "7"}, delay=1.2)
    )
    async with proxy.client() as client:
        with pytest.raises(anthropic.RateLimitError) as raised:
            async with client.messages.stream(
                model=MODEL, max_tokens=10, messages=REQUEST["messages"]
            ) as stream:
                await stream.get_final_message()
    assert raised.value.response.headers["retry-after"] == "7"


async def test_hold_deadline_commits_and_pings_while_the_upstream_is_silent(
    make_proxy: MakeProxy,
) -> None:
    proxy = await make_proxy(commit_timeout=0.3, ping_interval=0.2)
    proxy.fake.enqueue(Reply.stream(text_stream("at last"), delay=1.2))
    status, headers_at, events = await raw_stream(proxy)
    assert status == 200
    assert 0.25 <= headers_at < 0.9
    assert events[0][1] == "message_start" and events[0][0] < 0.9
    assert names(events).count("ping") >= 2
    assert text_of(events) == "at last"


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(Reply.stream([ROLE_ONLY, *text_stream("lost")], drop_after=1), id="drop"),
        pytest.param(Reply.stream([ROLE_ONLY], done=False), id="truncated"),
        pytest.param(Reply.stream([ROLE_ONLY, CAPACITY_ERROR], done=False), id="error-chunk"),
        pytest.param(Reply.error(502, "<html>bad gateway</html>"), id="http-502"),
    ],
)
async def test_failure_before_any_content_is_retried_unseen(
    make_proxy: MakeProxy, broken: Reply
) -> None:
    proxy = await make_proxy(commit_timeout=10.0)
    proxy.fake.enqueue(broken, Reply.stream(text_stream("second attempt", pieces=2)))
    status, _, events = await raw_stream(proxy)
    assert status == 200
    assert names(events).count("message_start") == 1
    assert "error" not in names(events)
    assert text_of(events) == "second attempt"
    assert len(proxy.fake.requests) == 2
    assert proxy.ledger.records[-1].error_type is None


async def test_unseen_retry_after_the_commit_keeps_one_message_start(
    make_proxy: MakeProxy,
) -> None:
    proxy = await make_proxy(commit_timeout=0.2, ping_interval=0.1)
    proxy.fake.enqueue(
        Reply.stream([ROLE_ONLY], done=False, first_chunk_delay=0.5),
        Reply.stream(text_stream("recovered after pings")),
    )
    status, _, events = await raw_stream(proxy)
    assert status == 200
    assert names(events).count("message_start") == 1
    assert "ping" in names(events)
    assert text_of(events) == "recovered after pings"
    assert len(proxy.fake.requests) == 2


async def test_failures_beyond_the_retry_budget_before_content_are_an_http_error(
    make_proxy: MakeProxy,
) -> None:
    proxy = await make_proxy(commit_timeout=10.0, max_retries=2)
    proxy.fake.enqueue(*[Reply.stream([ROLE_ONLY], done=False)] * 3)
    status, _, events = await raw_stream(proxy)
    assert status == 500
    assert events[0][2]["error"]["type"] == "api_error"
    assert "truncated" in events[0][2]["error"]["message"]
    assert len(proxy.fake.requests) == 3


@pytest.mark.parametrize(
    ("tail", "error_type"),
    [
        pytest.param([CAPACITY_ERROR], "overloaded_error", id="capacity-in-stream"),
        pytest.param([{"error": {"message": "Internal error", "code": 500}}], "overloaded_error",
                     id="5xx-in-stream"),
        pytest.param([], "overloaded_error", id="truncated"),
        pytest.param([{"error": {"message": "content refused by the safety filter",
                                 "code": 403}}], "permission_error", id="permanent-keeps-type"),
    ],
)  # fmt: skip
async def test_failure_after_content_is_one_error_event_of_the_right_type(
    proxy: ProxyUnderTest, tail: list[Any], error_type: str
) -> None:
    head = [chunk({"role": "assistant", "content": "partial "})]
    proxy.fake.enqueue(Reply.stream([*head, *tail], done=False))
    status, _, events = await raw_stream(proxy)
    assert status == 200
    assert text_of(events) == "partial "
    assert names(events)[-1] == "error"
    assert events[-1][2]["error"]["type"] == error_type
    assert "message_stop" not in names(events), "never a fake end_turn"
    assert len(proxy.fake.requests) == 1


async def test_claude_code_gets_a_stream_cut_short_after_content_so_it_resends_the_turn(
    proxy: ProxyUnderTest,
) -> None:
    """Claude Code gives up on an error event after content but re-sends a turn whose stream
    ends early (measured with 2.1.332): for it, a transient failure ends the body there."""
    head = [chunk({"role": "assistant", "content": "partial "})]
    proxy.fake.enqueue(Reply.stream([*head, CAPACITY_ERROR], done=False))
    claude_code = {"x-app": "cli", "User-Agent": "claude-cli/2.1.332 (external, sdk-cli)"}
    status, _, events = await raw_stream(proxy, claude_code)
    assert status == 200
    assert text_of(events) == "partial "
    assert "error" not in names(events)
    assert "message_delta" not in names(events) and "message_stop" not in names(events)
    assert proxy.ledger.records[-1].error_type == "overloaded_error"


async def test_claude_code_still_gets_a_permanent_error_as_an_event(proxy: ProxyUnderTest) -> None:
    head = [chunk({"role": "assistant", "content": "partial "})]
    refused = {"error": {"message": "content refused by the safety filter", "code": 403}}
    proxy.fake.enqueue(Reply.stream([*head, refused], done=False))
    _, _, events = await raw_stream(proxy, {"x-app": "cli"})
    assert names(events)[-1] == "error"
    assert events[-1][2]["error"]["type"] == "permission_error"


async def test_non_streamed_answer_retries_a_dropped_body(proxy: ProxyUnderTest) -> None:
    proxy.fake.enqueue(
        Reply.stream(text_stream("cut", pieces=3), drop_after=1),
        Reply.json(completion("whole")),
    )
    async with proxy.client() as client:
        message = await client.messages.create(
            model=MODEL, max_tokens=10, messages=REQUEST["messages"]
        )
    assert message.content[0].text == "whole"
    assert len(proxy.fake.requests) == 2


async def test_forced_tool_choice_is_kept_when_the_400_is_about_something_else(
    proxy: ProxyUnderTest,
) -> None:
    tool = {"name": "Read", "input_schema": {"type": "object", "properties": {}}}
    proxy.fake.enqueue(
        Reply.error(400, cf_error(5006, "AiError: Bad input: messages too short")),
        Reply.json(completion("later")),
    )
    async with proxy.client() as client:
        with pytest.raises(anthropic.BadRequestError):
            await client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=10,
                messages=REQUEST["messages"],
                tools=[tool],
                tool_choice={"type": "any"},
            )
        await client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=REQUEST["messages"],
            tools=[tool],
            tool_choice={"type": "any"},
        )
    assert [r.body["tool_choice"] for r in proxy.fake.requests] == ["required", "required"]
