"""The AI Gateway endpoint choice and the `[gateway]` settings: config.toml, the environment,
`cc-proxy login` (checked on the chosen path) and `cc-proxy status`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cc_nemo.errors import UserError
from cc_nemo.settings.config import Config, load_config, save_config
from cc_nemo.settings.resolve import (
    endpoint_in_url,
    gateway_endpoint,
    normalize_gateway_url,
    resolve_provider,
    resolve_proxy_settings,
)
from cc_nemo.settings.runtime import GatewayOptions, ProviderSettings
from tests.cli.conftest import CF_API_TOKEN, GATEWAY_TOKEN, run_cli
from tests.cli.test_status import rows_of
from tests.fake_upstream import FakeUpstream, Reply, gateway_error

GATEWAY = "https://gateway.ai.cloudflare.com/v1/0123456789abcdef0123456789abcdef/main"
NEMOTRON = "@cf/nvidia/nemotron-3-120b-a12b"


@pytest.fixture(autouse=True)
def no_endpoint_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CC_PROXY_GATEWAY_ENDPOINT", raising=False)


def write_config(config_home: Path, text: str) -> Path:
    config_home.mkdir(parents=True, exist_ok=True)
    path = config_home / "config.toml"
    path.write_text(text)
    return path


def gateway_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CF_AI_GATEWAY_URL", GATEWAY)
    monkeypatch.setenv("CF_AIG_TOKEN", GATEWAY_TOKEN)


# ---- config.toml ----------------------------------------------------------------------------


def test_gateway_settings_load_and_round_trip(config_home: Path) -> None:
    path = write_config(
        config_home,
        '[gateway]\nendpoint = "workers-ai"\ncache_ttl = 3600\nrequest_timeout_ms = 90000\n'
        'max_attempts = 3\nretry_delay_ms = 500\nbackoff = "linear"\n',
    )
    config = load_config(path)
    assert config.gateway == {
        "endpoint": "workers-ai",
        "cache_ttl": 3600,
        "request_timeout_ms": 90000,
        "max_attempts": 3,
        "retry_delay_ms": 500,
        "backoff": "linear",
    }
    save_config(config, path)
    assert load_config(path) == config


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('endpoint = "rest"', 'gateway.endpoint must be "compat" or "workers-ai", not \'rest\''),
        ("cache_ttl = 59", "gateway.cache_ttl must be seconds from 60 to 2592000 (30 days)"),
        ("cache_ttl = 2592001", "gateway.cache_ttl must be seconds from 60 to 2592000"),
        ("cache_ttl = 1.5", "gateway.cache_ttl must be an integer"),
        ("request_timeout_ms = 0", "gateway.request_timeout_ms must be a positive number"),
        ("max_attempts = 0", "gateway.max_attempts must be an integer from 1 to 5, not 0"),
        ("max_attempts = 6", "gateway.max_attempts must be an integer from 1 to 5, not 6"),
        ("max_attempts = true", "gateway.max_attempts must be an integer"),
        ("retry_delay_ms = 5001", "gateway.retry_delay_ms must be milliseconds from 100 to 5000"),
        ('backoff = "random"', 'gateway.backoff must be "constant", "linear" or "exponential"'),
        ("skip_cache = true", "unknown key gateway.skip_cache (known: backoff, cache_ttl,"),
    ],
)
def test_a_bad_gateway_setting_is_one_line_naming_it(
    config_home: Path, table: str, problem: str
) -> None:
    path = write_config(config_home, f"[gateway]\n{table}\n")
    with pytest.raises(UserError) as caught:
        load_config(path)
    assert problem in caught.value.message
    assert str(path) in caught.value.message and "\n" not in caught.value.message
    result = run_cli("status")
    assert result.exit_code != 0
    assert problem in result.output and "Traceback" not in result.output


def test_a_gateway_that_is_not_a_table_is_refused(config_home: Path) -> None:
    with pytest.raises(UserError, match="gateway must be a table"):
        load_config(write_config(config_home, 'gateway = "workers-ai"\n'))


# ---- resolution -----------------------------------------------------------------------------


def test_the_endpoint_comes_from_the_environment_then_config_then_compat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chosen = gateway_endpoint(Config())
    assert (chosen.value, chosen.source) == ("compat", "default")
    chosen = gateway_endpoint(Config(gateway={"endpoint": "workers-ai"}))
    assert (chosen.value, chosen.source) == ("workers-ai", "config")
    monkeypatch.setenv("CC_PROXY_GATEWAY_ENDPOINT", "Compat")
    chosen = gateway_endpoint(Config(gateway={"endpoint": "workers-ai"}))
    assert (chosen.value, chosen.source) == ("compat", "env")
    monkeypatch.setenv("CC_PROXY_GATEWAY_ENDPOINT", "universal")
    with pytest.raises(UserError, match="CC_PROXY_GATEWAY_ENDPOINT must be one of compat, workers"):
        gateway_endpoint(Config())


@pytest.mark.parametrize(
    ("endpoint", "url", "model"),
    [
        ("compat", GATEWAY + "/compat/chat/completions", "workers-ai/" + NEMOTRON),
        ("workers-ai", GATEWAY + "/workers-ai/v1/chat/completions", NEMOTRON),
    ],
)
def test_the_resolved_provider_uses_the_configured_path_and_its_model_ids(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, url: str, model: str
) -> None:
    gateway_env(monkeypatch)
    config = Config(gateway={"endpoint": endpoint, "max_attempts": 2})
    settings = resolve_proxy_settings(None, session_token="t" * 32, config=config)
    provider = settings.provider
    assert provider.chat_completions_url == url
    assert provider.upstream_model_id(settings.main_model.model) == model
    # A catalog id already written with the prefix loses it on the Workers AI path.
    assert provider.upstream_model_id("workers-ai/" + NEMOTRON) == model
    assert provider.gateway_headers == {"cf-aig-max-attempts": "2"}
    assert provider.headers == {"cf-aig-authorization": f"Bearer {GATEWAY_TOKEN}"}


def test_gateway_settings_reach_only_an_ai_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    options = GatewayOptions(cache_ttl=120)
    through_gateway = ProviderSettings("openai", GATEWAY + "/workers-ai/v1", gateway=options)
    elsewhere = ProviderSettings("openai", "https://openrouter.ai/api/v1", gateway=options)
    assert through_gateway.is_ai_gateway and through_gateway.gateway_headers == {
        "cf-aig-cache-ttl": "120"
    }
    assert not elsewhere.is_ai_gateway and elsewhere.gateway_headers == {}
    monkeypatch.setenv("CC_PROXY_BASE_URL", "http://localhost:11434/v1")
    provider = resolve_provider(Config(gateway={"cache_ttl": 120}))
    assert provider.kind == "openai" and provider.gateway_headers == {}


@pytest.mark.parametrize(
    ("pasted", "endpoint"),
    [
        (GATEWAY + "/workers-ai/v1/chat/completions", "workers-ai"),
        (GATEWAY + "/workers-ai/v1/", "workers-ai"),
        (GATEWAY + "/compat/chat/completions", "compat"),
        (GATEWAY + "/compat", "compat"),
        (GATEWAY + "/chat/completions", None),
        (GATEWAY, None),
    ],
)
def test_a_pasted_endpoint_url_is_cut_back_to_the_gateway_and_names_its_path(
    pasted: str, endpoint: str | None
) -> None:
    assert normalize_gateway_url(pasted) == GATEWAY
    assert endpoint_in_url(pasted) == endpoint


# ---- login ----------------------------------------------------------------------------------


def login(server: FakeUpstream, *flags: str, url_suffix: str = "") -> tuple[int, str]:
    result = run_cli(
        "login",
        "--gateway-url",
        f"{server.url}/v1/acct/gw{url_suffix}",
        "--aig-token-stdin",
        "--cloudflare-token-stdin",
        *flags,
        input=f"{GATEWAY_TOKEN}\n{CF_API_TOKEN}\n",
    )
    return result.exit_code, result.output


def test_login_with_the_workers_ai_endpoint_checks_that_path_with_a_bare_id(
    upstream: FakeUpstream,
) -> None:
    code, output = login(upstream, "--endpoint", "workers-ai")
    assert code == 0, output
    [seen] = upstream.requests
    assert seen.path == "/v1/acct/gw/workers-ai/v1/chat/completions"
    assert seen.body["model"] == NEMOTRON
    assert load_config() == Config(
        provider="cloudflare",
        gateway_url=f"{upstream.url}/v1/acct/gw",
        gateway={"endpoint": "workers-ai"},
    )
    assert "credentials verified" in output
    assert "endpoint: workers-ai (…/workers-ai/v1/chat/completions, model ids @cf/…)" in output
    assert GATEWAY_TOKEN not in output and CF_API_TOKEN not in output


def test_login_without_an_endpoint_keeps_compat_and_writes_no_gateway_table(
    upstream: FakeUpstream,
) -> None:
    code, output = login(upstream)
    assert code == 0, output
    [seen] = upstream.requests
    assert seen.path == "/v1/acct/gw/compat/chat/completions"
    assert seen.body["model"] == "workers-ai/" + NEMOTRON
    assert load_config().gateway == {}
    assert "endpoint: compat" in output


def test_a_pasted_workers_ai_url_chooses_that_endpoint(upstream: FakeUpstream) -> None:
    code, output = login(upstream, url_suffix="/workers-ai/v1/chat/completions")
    assert code == 0, output
    assert upstream.requests[0].path == "/v1/acct/gw/workers-ai/v1/chat/completions"
    config = load_config()
    assert config.gateway_url == f"{upstream.url}/v1/acct/gw"
    assert config.gateway == {"endpoint": "workers-ai"}


def test_login_again_keeps_the_configured_endpoint_and_the_other_gateway_settings(
    upstream: FakeUpstream,
) -> None:
    save_config(Config(gateway={"endpoint": "workers-ai", "max_attempts": 2}))
    code, output = login(upstream)
    assert code == 0, output
    assert upstream.requests[0].path == "/v1/acct/gw/workers-ai/v1/chat/completions"
    assert load_config().gateway == {"endpoint": "workers-ai", "max_attempts": 2}
    code, output = login(upstream, "--endpoint", "compat")
    assert code == 0, output
    assert upstream.requests[1].path == "/v1/acct/gw/compat/chat/completions"
    assert load_config().gateway == {"endpoint": "compat", "max_attempts": 2}


def test_an_unknown_endpoint_is_one_line_and_saves_nothing(upstream: FakeUpstream) -> None:
    code, output = login(upstream, "--endpoint", "universal")
    assert code != 0
    assert "--endpoint must be one of compat, workers-ai, not 'universal'" in output
    assert output.count("\n") == 1 and "Traceback" not in output
    assert upstream.requests == [] and load_config() == Config()


def test_the_endpoint_is_a_gateway_flag(upstream: FakeUpstream) -> None:
    result = run_cli(
        "login", "--provider", "openai", "--base-url", upstream.url, "--endpoint", "workers-ai"
    )
    assert result.exit_code != 0
    assert "do not mix them" in result.output


def test_a_model_id_without_its_provider_prefix_is_named_as_such(upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply.error(400, gateway_error(2008, "Invalid provider")))
    code, output = login(upstream)
    assert code != 0
    assert "AI Gateway found no provider in the model id" in output
    assert "(--endpoint)" in output and "--no-verify" in output
    assert load_config() == Config()


# ---- status ---------------------------------------------------------------------------------


@pytest.fixture
def claude_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.cli.test_status import fake_claude

    path = fake_claude(tmp_path / "bin", 'echo "2.1.330 (Claude Code)"')
    monkeypatch.setenv("PATH", str(path.parent))


def test_status_shows_the_endpoint_and_the_gateway_headers_with_their_sources(
    claude_on_path: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway_env(monkeypatch)
    rows = rows_of(run_cli("status").stdout)
    assert rows["Gateway endpoint"] == (
        "compat (…/compat/chat/completions, model ids workers-ai/@cf/…) (default)"
    )
    assert rows["Gateway headers"] == "cf-aig-metadata (request id, Claude Code session, model)"
    save_config(Config(gateway={"endpoint": "workers-ai", "cache_ttl": 600, "max_attempts": 3}))
    result = run_cli("status")
    assert result.exit_code == 0, result.output
    rows = rows_of(result.stdout)
    assert rows["Gateway endpoint"] == (
        "workers-ai (…/workers-ai/v1/chat/completions, model ids @cf/…) (config)"
    )
    assert rows["Gateway headers"] == (
        "cf-aig-metadata (request id, Claude Code session, model); cf-aig-cache-ttl: 600; "
        "cf-aig-max-attempts: 3 (config)"
    )
    monkeypatch.setenv("CC_PROXY_GATEWAY_ENDPOINT", "compat")
    assert rows_of(run_cli("status").stdout)["Gateway endpoint"].endswith("(env)")


def test_status_shows_no_gateway_rows_for_another_provider(
    claude_on_path: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC_PROXY_BASE_URL", "http://localhost:11434/v1")
    save_config(Config(gateway={"cache_ttl": 600}))
    rows = rows_of(run_cli("status").stdout)
    assert rows["Provider"] == "openai (env)"
    assert "Gateway endpoint" not in rows and "Gateway headers" not in rows
