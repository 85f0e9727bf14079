"""Upstream failures reach the SDK as the typed errors Claude Code's recovery expects."""

from __future__ import annotations

import socket

import anthropic
import pytest

from tests.fake_upstream import (
    CAPACITY_ERROR,
    DAILY_QUOTA_ERROR,
    Reply,
    cf_error,
    chunk,
    completion,
    gateway_error,
    text_stream,
)
from tests.fixtures import (
    CLOUDFLARE_TOKEN,
    GATEWAY_TOKEN,
    SESSION_TOKEN,
    MakeProxy,
    ProxyUnderTest,
)

MODEL = "claude-sonnet-5"
MESSAGES = [{"role": "user", "content": "hi"}]
VLLM_OVERFLOW = (
    "This model's maximum context length is 262144 tokens. However, you requested 32000 "
    "output tokens and your prompt contains at least 270000 input tokens"
)


async def create(proxy: ProxyUnderTest, **kwargs: object) -> anthropic.types.Message:
    async with proxy.client() as client:
        return await client.messages.create(
            model=kwargs.pop("model", MODEL),  # type: ignore[arg-type]
            max_tokens=kwargs.pop("max_tokens", 100),  # type: ignore[arg-type]
            messages=kwargs.pop("messages", MESSAGES),  # type: ignore[arg-type]
            **kwargs,  # type: ignore[arg-type]
        )


async def stream_text(proxy: ProxyUnderTest, **kwargs: object) -> str:
    async with (
        proxy.client() as client,
        client.messages.stream(
            model=MODEL,
            max_tokens=100,
            messages=MESSAGES,
            **kwargs,  # type: ignore[arg-type]
        ) as stream,
    ):
        return "".join([piece async for piece in stream.text_stream])


@pytest.mark.parametrize(
    ("upstream", "sdk_error", "status", "error_type"),
    [
        (Reply.error(429, {"success": False, "error": "Rate limit exceeded"}),
         anthropic.RateLimitError, 429, "rate_limit_error"),
        (Reply.error(400, cf_error(5006, "AiError: Bad input")), anthropic.BadRequestError, 400,
         "invalid_request_error"),
        (Reply.error(401, gateway_error(2009, "Unauthorized")), anthropic.AuthenticationError,
         401, "authentication_error"),
        (Reply.error(403, cf_error(5016, "Accept the model agreement")),
         anthropic.PermissionDeniedError, 403, "permission_error"),
        (Reply.error(404, cf_error(3042, "No such model")), anthropic.NotFoundError, 404,
         "not_found_error"),
        (Reply.error(413, cf_error(3006, "Request too large")), anthropic.APIStatusError, 413,
         "request_too_large"),
        (Reply.error(429, DAILY_QUOTA_ERROR), anthropic.APIStatusError, 402, "billing_error"),
    ],
)  # fmt: skip
async def test_upstream_errors_map_to_anthropic_errors_without_retry(
    proxy: ProxyUnderTest,
    upstream: Reply,
    sdk_error: type[anthropic.APIStatusError],
    status: int,
    error_type: str,
) -> None:
    proxy.fake.enqueue(upstream, upstream, upstream)
    with pytest.raises(sdk_error) as raised:
        await create(proxy)
    assert raised.value.status_code == status
    assert raised.value.body["error"]["type"] == error_type
    assert raised.value.body["request_id"] == raised.value.response.headers["request-id"]
    assert len(proxy.fake.requests) == 1, "not a proxy-side retry case"
    for secret in (SESSION_TOKEN, GATEWAY_TOKEN, CLOUDFLARE_TOKEN):
        assert secret not in raised.value.message


async def test_capacity_error_is_retried_and_the_client_never_sees_it(
    proxy: ProxyUnderTest,
) -> None:
    proxy.fake.enqueue(Reply.error(429, CAPACITY_ERROR), Reply.stream(text_stream("recovered")))
    assert await stream_text(proxy) == "recovered"
    assert len(proxy.fake.requests) == 2
    assert proxy.fake.requests[0].body == proxy.fake.requests[1].body


@pytest.mark.parametrize(
    ("upstream", "sdk_error", "status", "code"),
    [
        (Reply.error(429, cf_error(3021, "Rate limited")), anthropic.RateLimitError, 429, "3021"),
        (Reply.error(429, CAPACITY_ERROR), anthropic.OverloadedError, 529, "3040"),
    ],
    ids=["per-minute-rate-limit", "capacity"],
)
async def test_retryable_errors_are_retried_twice_then_reported(
    proxy: ProxyUnderTest,
    upstream: Reply,
    sdk_error: type[anthropic.APIStatusError],
    status: int,
    code: str,
) -> None:
    proxy.fake.enqueue(upstream, upstream, upstream)
    with pytest.raises(sdk_error) as raised:
        await create(proxy)
    assert raised.value.status_code == status
    assert code in raised.value.message
    assert len(proxy.fake.requests) == 3


async def test_stream_request_failing_before_commit_gets_a_plain_http_error(
    proxy: ProxyUnderTest,
) -> None:
    proxy.fake.enqueue(*[Reply.error(429, CAPACITY_ERROR)] * 3)
    with pytest.raises(anthropic.OverloadedError):
        await stream_text(proxy)


async def test_long_retry_after_is_passed_to_the_client_instead_of_waited(
    proxy: ProxyUnderTest,
) -> None:
    proxy.fake.enqueue(Reply.error(429, cf_error(3021, "slow down"), {"Retry-After": "30"}))
    with pytest.raises(anthropic.RateLimitError) as raised:
        await create(proxy)
    assert raised.value.response.headers["retry-after"] == "30"
    assert len(proxy.fake.requests) == 1


async def test_short_retry_after_is_honoured_by_the_proxy(proxy: ProxyUnderTest) -> None:
    proxy.fake.enqueue(
        Reply.error(429, cf_error(3021, "slow down"), {"Retry-After": "0.2"}),
        Reply.json(completion("after the wait")),
    )
    message = await create(proxy)
    assert message.content[0].text == "after the wait"
    first, second = proxy.fake.requests
    assert second.received_at - first.received_at >= 0.2


async def test_server_error_with_html_body_is_retried_then_reported(
    proxy: ProxyUnderTest,
) -> None:
    proxy.fake.enqueue(*[Reply.error(502, "<html>Bad gateway</html>")] * 3)
    with pytest.raises(anthropic.InternalServerError) as raised:
        await create(proxy)
    assert raised.value.status_code == 500
    assert len(proxy.fake.requests) == 3


async def test_context_overflow_uses_anthropics_prompt_too_long_wording(
    proxy: ProxyUnderTest,
) -> None:
    proxy.fake.enqueue(Reply.error(400, cf_error(5006, VLLM_OVERFLOW)))
    with pytest.raises(anthropic.BadRequestError) as raised:
        await create(proxy)
    assert raised.value.body["error"]["message"].startswith("prompt is too long: ")
    assert len(proxy.fake.requests) == 1


async def test_unreachable_upstream_is_overloaded_after_retries(make_proxy: MakeProxy) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    proxy = await make_proxy()
    from dataclasses import replace

    from cc_nemo.proxy.app import start_proxy
    from cc_nemo.settings.runtime import ProviderSettings

    settings = replace(
        proxy.settings,
        provider=ProviderSettings(kind="openai", base_url=f"http://127.0.0.1:{dead_port}/v1"),
    )
    running = await start_proxy(settings)
    try:
        async with anthropic.AsyncAnthropic(
            base_url=running.url, auth_token=SESSION_TOKEN, max_retries=0
        ) as client:
            with pytest.raises(anthropic.OverloadedError) as raised:
                await client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    finally:
        await running.stop()
    assert "Upstream unreachable" in raised.value.message
    assert running.ledger.records[-1].error_type == "overloaded_error"


async def test_first_byte_timeout_is_a_504(make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(first_byte_timeout=0.3)
    proxy.fake.enqueue(Reply.hang(5))
    with pytest.raises(anthropic.GatewayTimeoutError):
        await create(proxy)


async def test_upstream_200_carrying_an_error_envelope_is_an_error(
    make_proxy: MakeProxy,
) -> None:
    proxy = await make_proxy(max_retries=0)
    proxy.fake.enqueue(Reply.json(cf_error(3040, "Capacity temporarily exceeded")))
    with pytest.raises(anthropic.OverloadedError):
        await create(proxy)


async def test_upstream_200_carrying_a_capacity_error_is_retried(proxy: ProxyUnderTest) -> None:
    proxy.fake.enqueue(
        Reply.json(cf_error(3040, "Capacity temporarily exceeded")),
        Reply.json(completion("second try")),
    )
    message = await create(proxy)
    assert message.content[0].text == "second try"
    assert len(proxy.fake.requests) == 2


async def test_upstream_dropping_after_content_ends_with_a_retryable_error_event(
    proxy: ProxyUnderTest,
) -> None:
    chunks = text_stream("this reply is cut", pieces=4)
    proxy.fake.enqueue(Reply.stream(chunks, drop_after=2, chunk_delay=0.05))
    with pytest.raises(anthropic.APIStatusError) as raised:
        await stream_text(proxy)
    # overloaded_error is the one SSE error type Claude Code retries as a stream.
    assert raised.value.body["error"]["type"] == "overloaded_error"
    assert "truncated" in raised.value.body["error"]["message"]
    assert proxy.ledger.records[-1].error_type == "overloaded_error"
    assert len(proxy.fake.requests) == 1  # never retried once content has reached the client


async def test_error_chunk_inside_the_stream_becomes_an_error_event(
    proxy: ProxyUnderTest,
) -> None:
    chunks = [chunk({"content": "partial"}), cf_error(3040, "Capacity temporarily exceeded")]
    proxy.fake.enqueue(Reply.stream(chunks, done=False))
    with pytest.raises(anthropic.APIStatusError) as raised:
        await stream_text(proxy)
    assert raised.value.body["error"]["type"] == "overloaded_error"
    # 3040 is retried before the first byte, never after it.
    assert len(proxy.fake.requests) == 1


async def test_silence_after_streaming_began_is_a_timeout_error_event(
    make_proxy: MakeProxy,
) -> None:
    proxy = await make_proxy(read_timeout=0.3)
    proxy.fake.enqueue(Reply.stream(text_stream("slow", pieces=4), chunk_delay=2.0))
    with pytest.raises(anthropic.APIStatusError) as raised:
        await stream_text(proxy)
    # A read timeout is transient: reported so that Claude Code retries the turn.
    assert raised.value.body["error"]["type"] == "overloaded_error"
    assert "timed out" in raised.value.body["error"]["message"]


async def test_failure_after_commit_becomes_an_error_event(make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(max_retries=0, commit_timeout=0.3)
    proxy.fake.enqueue(Reply.error(429, CAPACITY_ERROR, delay=1.3))
    async with (
        proxy.client() as client,
        client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream,
    ):
        assert stream.response.status_code == 200
        with pytest.raises(anthropic.APIStatusError) as raised:
            await stream.get_final_message()
    assert raised.value.body["error"]["type"] == "overloaded_error"


async def test_rejected_forced_tool_choice_is_retried_with_auto_and_remembered(
    proxy: ProxyUnderTest,
) -> None:
    tool = {"name": "Read", "input_schema": {"type": "object", "properties": {}}}
    proxy.fake.enqueue(
        Reply.error(400, cf_error(8001, "Invalid input: tool_choice")),
        Reply.json(completion("first")),
        Reply.json(completion("second")),
    )
    for expected in ("first", "second"):
        message = await create(
            proxy, model="claude-haiku-4-5", tools=[tool], tool_choice={"type": "any"}
        )
        assert message.content[0].text == expected
    choices = [r.body["tool_choice"] for r in proxy.fake.requests]
    assert choices == ["required", "auto", "auto"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"max_tokens": 5, "messages": []}', "model"),
        (b'{"model": "claude-x", "messages": [{"role": "user", "content": "x"}]}', "max_tokens"),
        (b'{"model": "claude-x", "max_tokens": 5}', "messages"),
        (b'{"model": "claude-x", "max_tokens": -1, "messages": []}', "max_tokens"),
    ],
)
async def test_malformed_requests_are_400_naming_the_field(
    proxy: ProxyUnderTest, body: bytes, field: str
) -> None:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/messages",
            data=body,
            headers={**proxy.auth_headers(), "Content-Type": "application/json"},
        ) as response,
    ):
        payload = await response.json()
    assert response.status == 400
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"
    assert field in payload["error"]["message"]
    assert proxy.fake.requests == []


async def test_unknown_model_is_404_listing_known_aliases(proxy: ProxyUnderTest) -> None:
    with pytest.raises(anthropic.NotFoundError) as raised:
        await create(proxy, model="gpt-4o")
    message = raised.value.body["error"]["message"]
    assert "gpt-4o" in message
    assert "nemotron" in message and "gpt-oss-20b" in message
    assert proxy.fake.requests == []


async def test_wrong_token_is_an_authentication_error(proxy: ProxyUnderTest) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=proxy.url, auth_token="wrong-token", max_retries=0
    ) as client:
        with pytest.raises(anthropic.AuthenticationError):
            await client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    assert proxy.fake.requests == []


@pytest.mark.parametrize("stream", [True, False])
async def test_overflow_payload_in_a_200_reply_names_the_models_real_window(
    proxy: ProxyUnderTest, stream: bool
) -> None:
    """The overflow wording Claude Code compacts on carries the routed model's real window,
    whether the error arrives inside a stream or as a 200 JSON body."""
    window = proxy.settings.main_model.context_window
    payload = {"error": {"message": "context length exceeded", "code": 400}}
    proxy.fake.enqueue(Reply.stream([payload], done=False) if stream else Reply.json(payload))
    with pytest.raises(anthropic.APIStatusError) as raised:
        if stream:
            await stream_text(proxy)
        else:
            await create(proxy)
    error = raised.value.body["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("prompt is too long: ")
    assert error["message"].endswith(f" > {window} maximum")
