"""Settings resolution: env over config over defaults, provider headers, model lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from cc_nemo.errors import UserError
from cc_nemo.settings.catalog import DEFAULT_MODEL_ALIAS, ModelSpec
from cc_nemo.settings.config import Config, log_dir
from cc_nemo.settings.credentials import set_secret
from cc_nemo.settings.resolve import (
    NO_CREDENTIALS,
    account_id,
    build_catalog,
    gateway_url_from_parts,
    normalize_base_url,
    normalize_gateway_url,
    provider_kind,
    require_model,
    resolve_provider,
    resolve_proxy_settings,
)
from tests.cli.conftest import API_KEY, CF_API_TOKEN, GATEWAY_TOKEN

GATEWAY = "https://gateway.ai.cloudflare.com/v1/0123456789abcdef0123456789abcdef/main"
ACCOUNT = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("env", "config", "expected"),
    [
        ({}, Config(), ("cloudflare", "default")),
        ({}, Config(provider="anthropic", base_url="http://h"), ("anthropic", "config")),
        ({}, Config(base_url="http://h"), ("openai", "config")),
        ({"CC_PROXY_PROVIDER": "OpenAI"}, Config(provider="cloudflare"), ("openai", "env")),
        ({"CF_AI_GATEWAY_URL": GATEWAY}, Config(provider="openai"), ("cloudflare", "env")),
        ({"CC_PROXY_BASE_URL": "http://h/v1"}, Config(provider="cloudflare"), ("openai", "env")),
        ({"CC_PROXY_BASE_URL": "http://h"}, Config(provider="anthropic"), ("anthropic", "env")),
    ],
)
def test_provider_kind_prefers_the_environment_then_the_config(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], config: Config, expected: tuple[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    chosen = provider_kind(config)
    assert (chosen.value, chosen.source) == expected


def test_unknown_provider_in_the_environment_is_a_user_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CC_PROXY_PROVIDER", "azure")
    with pytest.raises(UserError, match="CC_PROXY_PROVIDER must be one of"):
        provider_kind(Config())


def test_cloudflare_provider_from_environment_alone_needs_no_keyring(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CF_AI_GATEWAY_URL", GATEWAY + "/")
    monkeypatch.setenv("CF_AIG_TOKEN", GATEWAY_TOKEN)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", CF_API_TOKEN)
    provider = resolve_provider(Config())
    assert provider.kind == "cloudflare"
    assert provider.chat_completions_url == GATEWAY + "/compat/chat/completions"
    assert provider.headers == {
        "cf-aig-authorization": f"Bearer {GATEWAY_TOKEN}",
        "Authorization": f"Bearer {CF_API_TOKEN}",
    }
    assert GATEWAY_TOKEN not in repr(provider)


def test_cloudflare_provider_from_config_and_stored_token_has_no_authorization_without_api_token() -> (
    None
):
    set_secret("aig_token", GATEWAY_TOKEN)
    provider = resolve_provider(Config(gateway_url=GATEWAY))
    assert provider.headers == {"cf-aig-authorization": f"Bearer {GATEWAY_TOKEN}"}


@pytest.mark.parametrize(
    "config", [Config(), Config(gateway_url=GATEWAY)], ids=["nothing", "url-without-token"]
)
def test_missing_cloudflare_credentials_say_run_login(config: Config) -> None:
    with pytest.raises(UserError) as caught:
        resolve_provider(config)
    assert caught.value.message == NO_CREDENTIALS


def test_gateway_token_without_url_is_still_missing_credentials() -> None:
    set_secret("aig_token", GATEWAY_TOKEN)
    with pytest.raises(UserError, match="cc-proxy login"):
        resolve_provider(Config())


@pytest.mark.parametrize(
    ("kind", "key", "headers"),
    [
        ("openai", API_KEY, {"Authorization": f"Bearer {API_KEY}"}),
        ("openai", None, {}),
        ("anthropic", API_KEY, {"x-api-key": API_KEY}),
    ],
)
def test_generic_providers_use_the_base_url_and_an_optional_key(
    monkeypatch: pytest.MonkeyPatch, kind: str, key: str | None, headers: dict[str, str]
) -> None:
    monkeypatch.setenv("CC_PROXY_PROVIDER", kind)
    monkeypatch.setenv("CC_PROXY_BASE_URL", "http://127.0.0.1:11434/v1/")
    if key:
        monkeypatch.setenv("CC_PROXY_API_KEY", key)
    provider = resolve_provider(Config())
    assert (provider.kind, provider.base_url, provider.headers) == (
        kind,
        "http://127.0.0.1:11434/v1",
        headers,
    )


def test_generic_provider_without_base_url_says_how_to_log_in() -> None:
    with pytest.raises(UserError, match="cc-proxy login --provider openai --base-url URL"):
        resolve_provider(Config(provider="openai"))


def test_bad_url_in_the_environment_says_it_came_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CF_AI_GATEWAY_URL", "gateway.example")
    monkeypatch.setenv("CF_AIG_TOKEN", GATEWAY_TOKEN)
    with pytest.raises(UserError, match=r"from the environment"):
        resolve_provider(Config())


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (GATEWAY, GATEWAY),
        (GATEWAY + "/", GATEWAY),
        (GATEWAY + "/compat", GATEWAY),
        (GATEWAY + "/compat/chat/completions", GATEWAY),
        ("http://127.0.0.1:8080/v1/acct/gw", "http://127.0.0.1:8080/v1/acct/gw"),
    ],
)
def test_gateway_url_is_normalized(given: str, expected: str) -> None:
    assert normalize_gateway_url(given) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "gateway.ai.cloudflare.com/v1/a/b",
        "ftp://gateway.ai.cloudflare.com/v1/a/b",
        "https://gateway.ai.cloudflare.com/v1/acct",
        "https://gateway.ai.cloudflare.com/v2/acct/gw",
    ],
)
def test_malformed_gateway_url_shows_the_expected_shape(bad: str) -> None:
    with pytest.raises(UserError, match=r"v1/\{account_id\}/\{gateway\}"):
        normalize_gateway_url(bad)


def test_gateway_url_is_built_from_account_id_and_gateway_name() -> None:
    assert gateway_url_from_parts(ACCOUNT.upper(), "main") == GATEWAY


@pytest.mark.parametrize(("acct", "gw"), [("1234", "main"), (ACCOUNT, "bad name")])
def test_bad_account_id_or_gateway_name_is_rejected(acct: str, gw: str) -> None:
    with pytest.raises(UserError):
        gateway_url_from_parts(acct, gw)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://localhost:11434/v1/", "http://localhost:11434/v1"),
        ("https://openrouter.ai/api/v1/chat/completions", "https://openrouter.ai/api/v1"),
    ],
)
def test_base_url_is_normalized(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


def test_base_url_without_scheme_is_rejected() -> None:
    with pytest.raises(UserError, match="http:// or https://"):
        normalize_base_url("localhost:11434")


@pytest.mark.parametrize(
    ("config", "env", "expected"),
    [
        (Config(gateway_url=GATEWAY), {}, ACCOUNT),
        (
            Config(base_url=f"https://api.cloudflare.com/client/v4/accounts/{ACCOUNT}/ai/v1"),
            {},
            ACCOUNT,
        ),
        (Config(base_url="http://localhost:11434/v1"), {}, None),
        (Config(gateway_url=GATEWAY), {"CLOUDFLARE_ACCOUNT_ID": "explicit"}, "explicit"),
    ],
)
def test_account_id_comes_from_the_environment_or_the_urls(
    monkeypatch: pytest.MonkeyPatch, config: Config, env: dict[str, str], expected: str | None
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert account_id(config) == expected


def test_unknown_alias_lists_the_known_ones_and_how_to_add_one() -> None:
    catalog = build_catalog(Config())
    with pytest.raises(UserError) as caught:
        require_model(catalog, "nemotorn")
    message = caught.value.message
    assert message.startswith("unknown model 'nemotorn'; known aliases: ")
    assert "nemotron" in message and "`cc-proxy models add`" in message


def test_raw_upstream_id_with_a_slash_gets_an_ad_hoc_spec() -> None:
    spec = require_model(build_catalog(Config()), "@cf/someone/new-model")
    assert (spec.model, spec.context_window) == ("@cf/someone/new-model", 128_000)


def test_cataloged_upstream_id_resolves_to_its_alias() -> None:
    spec = require_model(build_catalog(Config()), "@cf/moonshotai/kimi-k2.6")
    assert spec.alias == "kimi"


def test_user_alias_resolves_and_overrides_a_builtin() -> None:
    mine = ModelSpec("kimi", "@cf/moonshotai/kimi-k2.7-code", 100_000, 10_000)
    catalog = build_catalog(Config(user_models={"kimi": mine}))
    spec = require_model(catalog, "kimi")
    assert (spec.model, spec.user_defined) == ("@cf/moonshotai/kimi-k2.7-code", True)


@pytest.fixture
def logged_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CF_AI_GATEWAY_URL", GATEWAY)
    monkeypatch.setenv("CF_AIG_TOKEN", GATEWAY_TOKEN)


@pytest.mark.usefixtures("logged_in")
@pytest.mark.parametrize(
    ("argument", "env", "config", "main", "small"),
    [
        (None, {}, Config(), DEFAULT_MODEL_ALIAS, DEFAULT_MODEL_ALIAS),
        (None, {}, Config(default_model="kimi"), "kimi", "kimi"),
        (None, {"CC_PROXY_MODEL": "glm"}, Config(default_model="kimi"), "glm", "glm"),
        ("gemma4", {"CC_PROXY_MODEL": "glm"}, Config(default_model="kimi"), "gemma4", "gemma4"),
        (None, {}, Config(small_model="glm-flash"), DEFAULT_MODEL_ALIAS, "glm-flash"),
        (
            None,
            {"CC_PROXY_SMALL_MODEL": "qwen3"},
            Config(small_model="glm-flash"),
            DEFAULT_MODEL_ALIAS,
            "qwen3",
        ),
    ],
)
def test_models_resolve_argument_then_env_then_config_then_default(
    monkeypatch: pytest.MonkeyPatch,
    argument: str | None,
    env: dict[str, str],
    config: Config,
    main: str,
    small: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = resolve_proxy_settings(argument, session_token="t" * 32, config=config)
    assert (settings.main_model.alias, settings.small_model.alias) == (main, small)
    assert settings.subagent_model is None


@pytest.mark.usefixtures("logged_in")
def test_proxy_settings_carry_log_file_subagent_config_tunables_and_overrides() -> None:
    config = Config(subagent_model="glm", proxy={"first_byte_timeout": 42.0, "max_retries": 5})
    settings = resolve_proxy_settings(
        "kimi", session_token="s" * 32, small_model="gemma4", config=config, max_retries=1
    )
    assert settings.log_file == log_dir() / "proxy.log"
    assert settings.subagent_model is not None and settings.subagent_model.alias == "glm"
    assert (settings.first_byte_timeout, settings.max_retries) == (42.0, 1)
    assert settings.small_model.alias == "gemma4"
    assert settings.provider.kind == "cloudflare"


@pytest.mark.usefixtures("logged_in")
def test_proxy_settings_read_config_toml_when_no_config_is_given(isolated_user_dirs: Path) -> None:
    path = isolated_user_dirs / "config" / "cc-proxy" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text('default_model = "qwen3"\n')
    assert resolve_proxy_settings(None, session_token="x" * 32).main_model.alias == "qwen3"


@pytest.mark.usefixtures("logged_in")
def test_unknown_model_argument_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown model 'nope'"):
        resolve_proxy_settings("nope", session_token="x" * 32, config=Config())


def test_proxy_settings_without_credentials_is_the_login_error() -> None:
    with pytest.raises(UserError, match="No credentials found"):
        resolve_proxy_settings(None, session_token="x" * 32, config=Config())


@pytest.mark.usefixtures("logged_in")
def test_fallbacks_resolve_to_specs_by_the_alias_they_stand_in_for() -> None:
    config = Config(fallbacks={"nemotron": ["kimi", "gemma4"]})
    settings = resolve_proxy_settings(
        "nemotron", session_token="s" * 32, small_model="llama", config=config
    )
    assert [spec.alias for spec in settings.fallbacks_for(settings.main_model)] == [
        "kimi",
        "gemma4",
    ]
    assert settings.fallbacks_for(settings.small_model) == ()


@pytest.mark.usefixtures("logged_in")
@pytest.mark.parametrize(
    ("fallbacks", "expected"),
    [
        ({"nemotron": ["nope"]}, "unknown model 'nope'"),
        ({"ghost": ["kimi"]}, "'ghost' is not a known model"),
    ],
)
def test_a_fallback_that_is_not_a_model_is_a_user_error(
    fallbacks: dict[str, list[str]], expected: str
) -> None:
    with pytest.raises(UserError, match=expected):
        resolve_proxy_settings(
            "nemotron", session_token="s" * 32, config=Config(fallbacks=fallbacks)
        )
