"""AI Gateway's request and answer headers, and its two chat paths, end to end through the proxy.

Every request to an AI Gateway carries `cf-aig-metadata` (client, request id, Claude Code session,
the answering model's alias) and only the `cf-aig-*` settings config.toml sets; the answering
attempt's `cf-aig-log-id` lands on the request's Exchange on every path (docs/wire.md, "Endpoints
and headers"). The Exchange is read by an observer middleware added to the real app, innermost,
so it sees each request's Exchange once the proxy has finished with it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import pytest
from aiohttp import web

from cc_nemo.proxy.record import Exchange
from cc_nemo.settings.catalog import Catalog
from cc_nemo.settings.runtime import GatewayOptions, ProviderSettings, ProxySettings
from tests.fake_upstream import (
    CAPACITY_ERROR,
    FakeUpstream,
    Reply,
    anthropic_events,
    anthropic_message,
    completion,
    text_stream,
)
from tests.fixtures import CLOUDFLARE_TOKEN, GATEWAY_TOKEN, SESSION_TOKEN, proxy_settings
from tests.waiting import eventually

MESSAGES = [{"role": "user", "content": "hi"}]
SESSION = "3f2b8c1e-5d4a-4e7b-9c0d-1a2b3c4d5e6f"
NEMOTRON = "@cf/nvidia/nemotron-3-120b-a12b"
KIMI = "@cf/moonshotai/kimi-k2.6"
# Every request header AI Gateway reads as a setting (the metadata aside).
SETTING_HEADERS = (
    "cf-aig-cache-ttl",
    "cf-aig-skip-cache",
    "cf-aig-request-timeout",
    "cf-aig-max-attempts",
    "cf-aig-retry-delay",
    "cf-aig-backoff",
)


@dataclass
class ObservedProxy:
    """A running proxy app, the Exchanges it finished, and the fake upstream behind it."""

    url: str
    settings: ProxySettings
    fake: FakeUpstream
    exchanges: list[Exchange]

    def client(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url, auth_token=SESSION_TOKEN, max_retries=0)

    @property
    def exchange(self) -> Exchange:
        [exchange] = self.exchanges
        return exchange


StartProxy = Callable[..., Awaitable[ObservedProxy]]


@pytest.fixture
async def observed(
    fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[StartProxy]:
    """Factory: `await observed(endpoint="workers-ai", gateway=GatewayOptions(...))`; other
    keywords are proxy_settings' (provider_kind, ProxySettings fields)."""
    from cc_nemo.proxy.app import create_app
    from cc_nemo.proxy.keys import EXCHANGE
    from cc_nemo.proxy.protocol import ProxyAppRunner

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    runners: list[web.AppRunner] = []

    async def start(
        *, endpoint: str = "compat", gateway: GatewayOptions | None = None, **overrides: Any
    ) -> ObservedProxy:
        settings = proxy_settings(fake_upstream.url, log_file=tmp_path / "proxy.log", **overrides)
        provider = replace(
            settings.provider, endpoint=endpoint, gateway=gateway or GatewayOptions()
        )
        settings = replace(settings, provider=provider)
        exchanges: list[Exchange] = []

        @web.middleware
        async def observe(request: web.Request, handler: Any) -> web.StreamResponse:
            try:
                return await handler(request)
            finally:
                if EXCHANGE in request:
                    exchanges.append(request[EXCHANGE])

        app = create_app(settings)
        app.middlewares.append(observe)
        runner = ProxyAppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return ObservedProxy(f"http://{host}:{port}", settings, fake_upstream, exchanges)

    try:
        yield start
    finally:
        for runner in runners:
            await runner.cleanup()


async def ask(
    proxy: ObservedProxy, *, stream: bool, model: str = "claude-sonnet-5", session: bool = True
) -> tuple[str, str]:
    """One turn through the official SDK: (the answer's text, its `request-id` header)."""
    headers = {"x-claude-code-session-id": SESSION} if session else {}
    async with proxy.client() as client:
        if stream:
            async with client.messages.stream(
                model=model, max_tokens=100, messages=MESSAGES, extra_headers=headers
            ) as answered:
                message = await answered.get_final_message()
                request_id = answered.response.headers["request-id"]
        else:
            raw = await client.messages.with_raw_response.create(
                model=model, max_tokens=100, messages=MESSAGES, extra_headers=headers
            )
            message = await raw.parse()
            request_id = raw.headers["request-id"]
    return message.content[0].text, request_id


def metadata_of(headers: dict[str, str]) -> dict[str, Any]:
    metadata = json.loads(headers["cf-aig-metadata"])
    assert isinstance(metadata, dict)
    # AI Gateway keeps 5 entries and only flat values.
    assert len(metadata) <= 5
    assert all(isinstance(value, str | int | float | bool) for value in metadata.values())
    return metadata


# ---- cf-aig-metadata ------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_every_gateway_request_names_the_client_request_session_and_model(
    observed: StartProxy, stream: bool
) -> None:
    proxy = await observed()
    _, request_id = await ask(proxy, stream=stream)
    [received] = proxy.fake.requests
    assert metadata_of(received.headers) == {
        "client": "cc-proxy",
        "request_id": request_id,
        "claude_session": SESSION,
        "model": "nemotron",
    }
    assert proxy.exchange.request_id == request_id
    for secret in (GATEWAY_TOKEN, CLOUDFLARE_TOKEN, SESSION_TOKEN):
        assert secret not in received.headers["cf-aig-metadata"]


async def test_without_a_claude_code_session_the_metadata_leaves_it_out(
    observed: StartProxy,
) -> None:
    proxy = await observed()
    _, request_id = await ask(proxy, stream=True, session=False, model="claude-haiku-4-5")
    metadata = metadata_of(proxy.fake.requests[0].headers)
    assert metadata == {"client": "cc-proxy", "request_id": request_id, "model": "gpt-oss-20b"}


async def test_each_attempt_names_the_model_it_asks_a_fallback_its_own(
    observed: StartProxy,
) -> None:
    catalog = Catalog.build()
    proxy = await observed(max_retries=0, fallbacks={"nemotron": (catalog.resolve("kimi"),)})
    proxy.fake.enqueue(Reply.error(429, CAPACITY_ERROR), Reply.stream(text_stream("from kimi")))
    text, request_id = await ask(proxy, stream=True)
    assert text == "from kimi"
    first, second = (metadata_of(r.headers) for r in proxy.fake.requests)
    assert (first["model"], second["model"]) == ("nemotron", "kimi")
    assert first["request_id"] == second["request_id"] == request_id


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_no_cf_aig_header_goes_to_an_upstream_that_is_not_ai_gateway(
    observed: StartProxy, kind: str
) -> None:
    everything = GatewayOptions(
        cache_ttl=3600, request_timeout_ms=1000, max_attempts=3, retry_delay_ms=500
    )
    proxy = await observed(provider_kind=kind, gateway=everything)
    proxy.fake.enqueue(
        Reply.json(anthropic_message("ok", model="m"))
        if kind == "anthropic"
        else Reply.json(completion("ok"))
    )
    await ask(proxy, stream=False)
    [received] = proxy.fake.requests
    assert [name for name in received.headers if name.startswith("cf-aig-")] == []


# ---- the configured cf-aig settings ---------------------------------------------------------


async def test_unset_gateway_settings_send_nothing_caching_stays_off(observed: StartProxy) -> None:
    proxy = await observed()
    await ask(proxy, stream=True)
    [received] = proxy.fake.requests
    assert [name for name in SETTING_HEADERS if name in received.headers] == []


async def test_configured_gateway_settings_go_with_every_attempt(observed: StartProxy) -> None:
    options = GatewayOptions(
        cache_ttl=600,
        request_timeout_ms=45000,
        max_attempts=3,
        retry_delay_ms=1500,
        backoff="exponential",
    )
    proxy = await observed(gateway=options, max_retries=1)
    proxy.fake.enqueue(Reply.error(500, "boom"), Reply.stream(text_stream("second")))
    assert (await ask(proxy, stream=True))[0] == "second"
    assert len(proxy.fake.requests) == 2
    for received in proxy.fake.requests:
        sent = {
            name: received.headers[name] for name in SETTING_HEADERS if name in received.headers
        }
        assert sent == {
            "cf-aig-cache-ttl": "600",
            "cf-aig-request-timeout": "45000",
            "cf-aig-max-attempts": "3",
            "cf-aig-retry-delay": "1500",
            "cf-aig-backoff": "exponential",
        }
        # The auth headers are the provider's, untouched by the settings.
        assert received.headers["cf-aig-authorization"] == f"Bearer {GATEWAY_TOKEN}"


async def test_only_the_configured_settings_are_sent(observed: StartProxy) -> None:
    proxy = await observed(gateway=GatewayOptions(max_attempts=2))
    await ask(proxy, stream=False)
    [received] = proxy.fake.requests
    assert [name for name in SETTING_HEADERS if name in received.headers] == ["cf-aig-max-attempts"]


# ---- cf-aig-log-id and cf-aig-cache-status --------------------------------------------------


def log_id(value: str) -> dict[str, str]:
    return {"cf-aig-log-id": value}


@pytest.mark.parametrize("stream", [True, False])
async def test_the_gateway_log_id_of_the_answer_is_kept(observed: StartProxy, stream: bool) -> None:
    proxy = await observed()
    answer = (
        Reply.stream(text_stream("hello"), headers=log_id("01JLOGSTREAM"))
        if stream
        else Reply.json(completion("hello"), headers=log_id("01JLOGWHOLE"))
    )
    proxy.fake.enqueue(answer)
    assert (await ask(proxy, stream=stream))[0] == "hello"
    assert proxy.exchange.gateway_log_id == ("01JLOGSTREAM" if stream else "01JLOGWHOLE")
    assert not any("cache" in note for note in proxy.exchange.notes)


@pytest.mark.parametrize("stream", [True, False])
async def test_after_retries_and_a_fallback_the_answering_attempts_log_id_is_kept(
    observed: StartProxy, stream: bool
) -> None:
    catalog = Catalog.build()
    proxy = await observed(max_retries=1, fallbacks={"nemotron": (catalog.resolve("kimi"),)})
    answer = (
        Reply.stream(text_stream("from kimi"), headers=log_id("01JKIMI"))
        if stream
        else Reply.json(completion("from kimi"), headers=log_id("01JKIMI"))
    )
    proxy.fake.enqueue(
        Reply.error(429, CAPACITY_ERROR, headers=log_id("01JNEMO1")),
        Reply.error(429, CAPACITY_ERROR, headers=log_id("01JNEMO2")),
        answer,
    )
    assert (await ask(proxy, stream=stream))[0] == "from kimi"
    assert proxy.exchange.fallback_from == "nemotron"
    assert proxy.exchange.gateway_log_id == "01JKIMI"


async def test_a_stream_retried_unseen_keeps_the_second_attempts_log_id(
    observed: StartProxy,
) -> None:
    proxy = await observed(max_retries=1)
    proxy.fake.enqueue(
        Reply.stream(text_stream("lost"), drop_after=0, headers=log_id("01JDROPPED")),
        Reply.stream(text_stream("kept"), headers=log_id("01JANSWER")),
    )
    assert (await ask(proxy, stream=True))[0] == "kept"
    assert proxy.exchange.gateway_log_id == "01JANSWER"


async def test_a_failed_request_keeps_the_log_id_of_the_gateways_refusal(
    observed: StartProxy,
) -> None:
    proxy = await observed(max_retries=0)
    proxy.fake.enqueue(Reply.error(429, CAPACITY_ERROR, headers=log_id("01JREFUSED")))
    with pytest.raises(anthropic.APIStatusError):
        await ask(proxy, stream=True)
    assert proxy.exchange.gateway_log_id == "01JREFUSED"
    log_file = Path(proxy.settings.log_file or "")
    # The log's writer thread writes what has queued up a moment later.
    await eventually(lambda: "(gateway log 01JREFUSED)" in log_file.read_text(), what="the line")


@pytest.mark.parametrize("stream", [True, False])
async def test_pass_through_keeps_the_gateway_log_id(observed: StartProxy, stream: bool) -> None:
    proxy = await observed(provider_kind="anthropic")
    if stream:
        answer = Reply.stream(
            anthropic_events("passed", model="m"), done=False, headers=log_id("01JPASS")
        )
    else:
        answer = Reply.json(anthropic_message("passed", model="m"), headers=log_id("01JPASS"))
    proxy.fake.enqueue(answer)
    assert (await ask(proxy, stream=stream))[0] == "passed"
    assert proxy.exchange.gateway_log_id == "01JPASS"


async def test_a_log_id_that_is_not_a_token_is_not_kept(observed: StartProxy) -> None:
    proxy = await observed()
    proxy.fake.enqueue(Reply.json(completion("ok"), headers=log_id("x" * 300)))
    await ask(proxy, stream=False)
    assert proxy.exchange.gateway_log_id is None


@pytest.mark.parametrize(("status", "noted"), [("HIT", True), ("MISS", False)])
async def test_an_answer_from_the_gateway_cache_is_noted(
    observed: StartProxy, status: str, noted: bool
) -> None:
    proxy = await observed()
    proxy.fake.enqueue(Reply.stream(text_stream("cached"), headers={"cf-aig-cache-status": status}))
    await ask(proxy, stream=True)
    notes = proxy.exchange.notes
    assert any("cf-aig-cache-status: HIT" in note for note in notes) is noted


# ---- the two chat paths ---------------------------------------------------------------------

ENDPOINT_PATHS = {
    "compat": ("/compat/chat/completions", "workers-ai/"),
    "workers-ai": ("/workers-ai/v1/chat/completions", ""),
}


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("endpoint", ["compat", "workers-ai"])
async def test_each_gateway_path_gets_its_own_model_ids_end_to_end(
    observed: StartProxy, endpoint: str, stream: bool
) -> None:
    """Unscripted: the fake answers (echo) only when the id has the prefix its path wants."""
    catalog = Catalog.build()
    proxy = await observed(
        endpoint=endpoint, max_retries=0, fallbacks={"nemotron": (catalog.resolve("kimi"),)}
    )
    text, _ = await ask(proxy, stream=stream)
    assert "hi" in text
    path, prefix = ENDPOINT_PATHS[endpoint]
    [received] = proxy.fake.requests
    assert received.path == f"/v1/test-account/test-gateway{path}"
    assert received.body["model"] == prefix + NEMOTRON
    # A fallback's id follows the same rule.
    proxy.fake.enqueue(Reply.error(429, CAPACITY_ERROR))
    await ask(proxy, stream=stream)
    assert proxy.fake.requests[-1].body["model"] == prefix + KIMI
    assert proxy.fake.requests[-1].path == received.path


@pytest.mark.parametrize(
    ("path", "model", "code"),
    [
        ("/v1/a/g/compat/chat/completions", NEMOTRON, 2008),
        ("/v1/a/g/workers-ai/v1/chat/completions", "workers-ai/" + NEMOTRON, 5007),
    ],
)
async def test_the_fake_gateway_refuses_a_model_id_with_the_wrong_prefix_for_its_path(
    fake_upstream: FakeUpstream, path: str, model: str, code: int
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake_upstream.url + path, json={"model": model, "messages": MESSAGES}) as sent,
    ):
        assert sent.status == 400
        body = await sent.json()
    assert (body.get("error") or body.get("errors"))[0]["code"] == code


async def test_a_bare_id_sent_to_compat_reaches_claude_code_as_a_clear_error(
    observed: StartProxy, fake_upstream: FakeUpstream
) -> None:
    """The classic mistake: an OpenAI-compatible base URL ending in the gateway's `/compat`,
    where ids need `workers-ai/`. Claude Code gets the gateway's "Invalid provider", not an
    answer from the wrong model."""
    provider = ProviderSettings(
        kind="openai", base_url=f"{fake_upstream.url}/v1/a/g/compat", headers={}
    )
    proxy = await observed(provider_kind="openai", provider=provider)
    with pytest.raises(anthropic.NotFoundError, match="Invalid provider"):
        await ask(proxy, stream=False)
    assert proxy.fake.requests[-1].body["model"] == NEMOTRON
