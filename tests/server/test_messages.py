"""POST /v1/messages through the official SDK against the fake Workers AI upstream."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anthropic
import pytest

from tests.fake_upstream import (
    Reply,
    anthropic_message,
    completion,
    function_call,
    text_stream,
    tool_call_stream,
)
from tests.fixtures import (
    CLOUDFLARE_TOKEN,
    GATEWAY_TOKEN,
    SESSION_TOKEN,
    MakeProxy,
    ProxyUnderTest,
)

# The SDK warns about retired Claude model names; Claude Code still sends them.
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

BASH_TOOL = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
    },
}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def stream_message(
    proxy: ProxyUnderTest, prompt: str = "hi", model: str = "claude-sonnet-4-5"
) -> tuple[str, Any]:
    """One streamed request through the SDK: the text as it streamed, and the final message."""
    async with (
        proxy.client() as client,
        client.messages.stream(model=model, max_tokens=100, messages=user(prompt)) as stream,
    ):
        text = "".join([piece async for piece in stream.text_stream])
        return text, await stream.get_final_message()


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply.stream(text_stream("Hello from Workers AI", prompt_tokens=42)), ("Hello from Workers AI", 42)),
        # A JSON body despite `stream: true` is replayed as events.
        (Reply.json(completion("whole body", prompt_tokens=11)), ("whole body", 11)),
        # A stream that never sends `[DONE]` still completes.
        (Reply.stream(text_stream("no done here", prompt_tokens=7), done=False), ("no done here", 7)),
    ],
    ids=["stream", "json-body", "no-done-marker"],
)  # fmt: skip
async def test_streamed_reply_arrives_through_the_sdk(
    proxy: ProxyUnderTest, reply: Reply, expected: tuple[str, int]
) -> None:
    proxy.fake.enqueue(reply)
    text, message = await stream_message(proxy)
    assert (text, message.usage.input_tokens) == expected
    assert [block.text for block in message.content] == [expected[0]]
    assert message.model == "claude-sonnet-4-5"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0


async def test_non_streaming_reply_echoes_requested_model_and_usage(proxy: ProxyUnderTest) -> None:
    proxy.fake.enqueue(
        Reply.json(completion("plain answer", prompt_tokens=30, completion_tokens=3))
    )
    async with proxy.client() as client:
        message = await client.messages.create(
            model="claude-opus-4-1", max_tokens=100, messages=user("hi")
        )
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "plain answer"
    assert message.model == "claude-opus-4-1"
    assert message.id.startswith("msg_")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (30, 3)


async def test_reasoning_fields_become_a_thinking_block_before_the_text(
    proxy: ProxyUnderTest,
) -> None:
    proxy.fake.enqueue(
        Reply.stream(text_stream("42", reasoning="let me think", reasoning_field="reasoning"))
    )
    _, message = await stream_message(proxy, "answer?")
    kinds = [block.type for block in message.content]
    assert kinds == ["thinking", "text"]
    assert message.content[0].thinking == "let me think"
    assert message.content[1].text == "42"


async def test_tool_call_round_trip_keeps_the_tool_id_pairing(proxy: ProxyUnderTest) -> None:
    proxy.fake.enqueue(
        Reply.stream(tool_call_stream("Bash", {"command": "ls -la"}, call_id="functions.Bash:0")),
        Reply.stream(text_stream("Listed.")),
    )
    async with proxy.client() as client:
        async with client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=200, messages=user("list"), tools=[BASH_TOOL]
        ) as stream:
            first = await stream.get_final_message()
        assert first.stop_reason == "tool_use"
        tool_use = first.content[-1]
        assert tool_use.type == "tool_use"
        assert tool_use.name == "Bash"
        assert tool_use.input == {"command": "ls -la"}
        assert tool_use.id.startswith("toolu_")

        history = [
            *user("list"),
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": tool_use.id, "content": "a.txt"}
                ],
            },
        ]
        second = await client.messages.create(
            model="claude-sonnet-4-5", max_tokens=200, messages=history, tools=[BASH_TOOL]
        )
    assert second.content[0].text == "Listed."
    upstream_messages = proxy.fake.requests[-1].body["messages"]
    call = next(m for m in upstream_messages if m.get("tool_calls"))["tool_calls"][0]
    result = next(m for m in upstream_messages if m["role"] == "tool")
    assert result["tool_call_id"] == call["id"]
    assert result["content"] == "a.txt"


async def test_non_streaming_tool_call_with_object_arguments(proxy: ProxyUnderTest) -> None:
    proxy.fake.enqueue(
        Reply.json(completion(None, tool_calls=[function_call("Bash", {"command": "pwd"})]))
    )
    async with proxy.client() as client:
        message = await client.messages.create(
            model="claude-sonnet-4-5", max_tokens=100, messages=user("where"), tools=[BASH_TOOL]
        )
    assert message.stop_reason == "tool_use"
    assert message.content[-1].input == {"command": "pwd"}


async def test_upstream_streaming_a_non_stream_request_is_folded_into_one_message(
    proxy: ProxyUnderTest,
) -> None:
    proxy.fake.enqueue(Reply.stream(text_stream("folded", reasoning="hmm")))
    async with proxy.client() as client:
        message = await client.messages.create(
            model="claude-sonnet-4-5", max_tokens=100, messages=user("hi")
        )
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[1].text == "folded"


@pytest.mark.parametrize("stream", [False, True])
async def test_max_tokens_zero_is_answered_locally(proxy: ProxyUnderTest, stream: bool) -> None:
    async with proxy.client() as client:
        if stream:
            async with client.messages.stream(
                model="claude-sonnet-4-5", max_tokens=0, messages=user("warm the cache")
            ) as events:
                message = await events.get_final_message()
        else:
            message = await client.messages.create(
                model="claude-sonnet-4-5", max_tokens=0, messages=user("warm the cache")
            )
    assert message.content == []
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0
    assert proxy.fake.requests == []


async def test_exact_upstream_request_for_the_cloudflare_gateway(proxy: ProxyUnderTest) -> None:
    proxy.fake.enqueue(Reply.stream(text_stream("ok")))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/messages?beta=true",
            json={
                "model": "claude-sonnet-4-5",
                "max_tokens": 100,
                "stream": True,
                "messages": user("hi"),
            },
            headers={
                "Authorization": f"Bearer {SESSION_TOKEN}",
                "x-api-key": SESSION_TOKEN,
                "anthropic-version": "2023-06-01",
                "x-claude-code-session-id": "session-1234",
            },
        ) as response,
    ):
        assert response.status == 200
        await response.read()
    [received] = proxy.fake.requests
    assert received.path == "/v1/test-account/test-gateway/compat/chat/completions"
    assert received.headers["cf-aig-authorization"] == f"Bearer {GATEWAY_TOKEN}"
    assert received.headers["authorization"] == f"Bearer {CLOUDFLARE_TOKEN}"
    assert received.headers["x-session-affinity"] == "session-1234"
    assert "x-api-key" not in received.headers
    assert SESSION_TOKEN not in json.dumps(received.headers)
    assert received.body["model"] == "workers-ai/@cf/nvidia/nemotron-3-120b-a12b"
    assert received.body["stream"] is True
    assert received.body["stream_options"] == {"include_usage": True}
    assert received.body["messages"][-1] == {"role": "user", "content": "hi"}


async def test_generic_openai_provider_gets_the_bare_model_id(make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(provider_kind="openai")
    proxy.fake.enqueue(Reply.json(completion("fine")))
    async with proxy.client() as client:
        await client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=user("x"))
    [received] = proxy.fake.requests
    assert received.path == "/v1/chat/completions"
    assert received.body["model"] == "@cf/openai/gpt-oss-20b"
    assert received.headers["authorization"] == f"Bearer {CLOUDFLARE_TOKEN}"


ROUTES = [
    ("claude-sonnet-4-5-20250929", "workers-ai/@cf/nvidia/nemotron-3-120b-a12b"),
    ("claude-opus-4-8", "workers-ai/@cf/nvidia/nemotron-3-120b-a12b"),
    ("claude-3-5-haiku-20241022", "workers-ai/@cf/openai/gpt-oss-20b"),
    ("claude-haiku-4-5", "workers-ai/@cf/openai/gpt-oss-20b"),
    ("nemotron", "workers-ai/@cf/nvidia/nemotron-3-120b-a12b"),
    ("gpt-oss-20b", "workers-ai/@cf/openai/gpt-oss-20b"),
    ("kimi", "workers-ai/@cf/moonshotai/kimi-k2.6"),
    ("claude-cf-glm", "workers-ai/@cf/zai-org/glm-5.2"),
    ("@cf/qwen/qwen3-30b-a3b-fp8", "workers-ai/@cf/qwen/qwen3-30b-a3b-fp8"),
]


@pytest.mark.parametrize(("requested", "upstream_model"), ROUTES)
async def test_model_names_route_to_the_right_upstream_and_echo_back(
    proxy: ProxyUnderTest, requested: str, upstream_model: str
) -> None:
    proxy.fake.enqueue(Reply.json(completion("routed")))
    async with proxy.client() as client:
        message = await client.messages.create(model=requested, max_tokens=50, messages=user("x"))
    assert message.model == requested
    assert proxy.fake.requests[-1].body["model"] == upstream_model


async def test_remembered_routes_never_stand_for_another_name(proxy: ProxyUnderTest) -> None:
    """One proxy remembers each name's route: every name, again and in any order, still goes
    where it should, and an unknown one is still refused."""
    async with proxy.client(max_retries=0) as client:
        for requested, upstream_model in [*ROUTES, *reversed(ROUTES), *ROUTES]:
            proxy.fake.enqueue(Reply.json(completion("routed")))
            await client.messages.create(model=requested, max_tokens=50, messages=user("x"))
            assert proxy.fake.requests[-1].body["model"] == upstream_model, requested
            with pytest.raises(anthropic.NotFoundError):
                await client.messages.create(
                    model="no-such-model", max_tokens=5, messages=user("x")
                )


async def test_anthropic_pass_through_maps_the_model_and_keeps_the_body(
    make_proxy: MakeProxy,
) -> None:
    proxy = await make_proxy(provider_kind="anthropic")
    proxy.fake.enqueue(Reply.json(anthropic_message("passed", model="@cf/nvidia/x")))
    async with proxy.client() as client:
        message = await client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=50,
            messages=user("x"),
            extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
        )
    assert message.content[0].text == "passed"
    assert message.model == "claude-sonnet-4-5"
    [received] = proxy.fake.requests
    assert received.path == "/v1/messages"
    assert received.body["model"] == "@cf/nvidia/nemotron-3-120b-a12b"
    assert received.body["messages"] == user("x")
    assert received.headers["x-api-key"] == CLOUDFLARE_TOKEN
    assert received.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert "authorization" not in received.headers


async def test_anthropic_pass_through_stream_rewrites_only_the_model(
    make_proxy: MakeProxy,
) -> None:
    proxy = await make_proxy(provider_kind="anthropic")
    text, message = await stream_message(proxy, "ping me", model="claude-opus-4-8")
    assert text == "echo: ping me"
    assert message.model == "claude-opus-4-8"
    assert proxy.fake.requests[-1].body["stream"] is True
    assert proxy.ledger.records[-1].output_tokens > 0
