"""Shared fixtures: a fake upstream and a real proxy pointed at it (registered in conftest.py).

    async def test_something(proxy: ProxyUnderTest) -> None:
        proxy.fake.enqueue(Reply.stream(text_stream("hi")))
        async with proxy.client() as client:
            message = await client.messages.create(...)

`make_proxy(**settings_overrides)` builds one with other settings (small ping_interval, ...).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.fake_upstream import FakeUpstream

if TYPE_CHECKING:
    import anthropic

    from cc_nemo.proxy.app import RunningProxy
    from cc_nemo.proxy.usage import UsageLedger
    from cc_nemo.settings.runtime import ProxySettings

SESSION_TOKEN = "cc-test-session-token-7f3a9c2e5b"
GATEWAY_TOKEN = "gw-test-secret-41d8cd98f00b"
CLOUDFLARE_TOKEN = "cf-test-secret-e3b0c44298fc"
MAIN_ALIAS = "nemotron"
SMALL_ALIAS = "gpt-oss-20b"


def proxy_settings(upstream_url: str, **overrides: Any) -> ProxySettings:
    """Settings for a proxy talking to the fake as if it were an AI Gateway `compat` endpoint.

    `provider_kind="openai"` / `"anthropic"` switch the provider; other keywords override
    ProxySettings fields."""
    from cc_nemo.settings.catalog import Catalog
    from cc_nemo.settings.runtime import ProviderSettings, ProxySettings

    kind = overrides.pop("provider_kind", "cloudflare")
    catalog = Catalog.build()
    if kind == "cloudflare":
        provider = ProviderSettings(
            kind="cloudflare",
            base_url=f"{upstream_url}/v1/test-account/test-gateway",
            headers={
                "cf-aig-authorization": f"Bearer {GATEWAY_TOKEN}",
                "Authorization": f"Bearer {CLOUDFLARE_TOKEN}",
            },
        )
    elif kind == "openai":
        provider = ProviderSettings(
            kind="openai",
            base_url=f"{upstream_url}/v1",
            headers={"Authorization": f"Bearer {CLOUDFLARE_TOKEN}"},
        )
    else:
        provider = ProviderSettings(
            kind="anthropic", base_url=upstream_url, headers={"x-api-key": CLOUDFLARE_TOKEN}
        )
    settings = ProxySettings(
        provider=provider,
        catalog=catalog,
        main_model=catalog.resolve(MAIN_ALIAS),
        small_model=catalog.resolve(SMALL_ALIAS),
        session_token=SESSION_TOKEN,
        first_byte_timeout=30.0,
        read_timeout=30.0,
        connect_timeout=5.0,
        retry_base_delay=0.01,
    )
    return replace(settings, **overrides)


@dataclass
class ProxyUnderTest:
    """A running proxy, its settings and ledger, and the fake upstream behind it."""

    running: RunningProxy
    settings: ProxySettings
    ledger: UsageLedger
    fake: FakeUpstream

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def token(self) -> str:
        return self.settings.session_token

    def client(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        """The official SDK pointed at the proxy, SDK retries off (we test ours)."""
        import anthropic

        options: dict[str, Any] = {
            "base_url": self.url,
            "auth_token": self.token,
            "max_retries": 0,
        }
        options.update(kwargs)
        return anthropic.AsyncAnthropic(**options)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def fake_upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def upstream(fake_upstream: FakeUpstream) -> FakeUpstream:
    """The same fake, by the name the launcher and end-to-end tests use for it."""
    return fake_upstream


MakeProxy = Callable[..., Awaitable[ProxyUnderTest]]


@pytest.fixture
async def make_proxy(
    fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MakeProxy]:
    """Factory: `await make_proxy(ping_interval=0.2)` starts a proxy with those settings."""
    from cc_nemo.proxy.app import start_proxy
    from cc_nemo.proxy.usage import UsageLedger

    # The upstream session honours *_PROXY variables; never route loopback tests through one.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    started: list[ProxyUnderTest] = []

    async def make(**overrides: Any) -> ProxyUnderTest:
        settings = proxy_settings(fake_upstream.url, **overrides)
        ledger = UsageLedger()
        running = await start_proxy(settings, ledger=ledger)
        proxy = ProxyUnderTest(running, settings, ledger, fake_upstream)
        started.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in started:
            await proxy.running.stop()


@pytest.fixture
async def proxy(make_proxy: MakeProxy, tmp_path: Path) -> ProxyUnderTest:
    """A proxy with default test settings, logging to tmp_path/proxy.log."""
    return await make_proxy(log_file=tmp_path / "proxy.log")
