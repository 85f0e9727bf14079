"""The environment claude gets: pointed at the proxy, the user's own values kept where sensible."""

from __future__ import annotations

import dataclasses

import pytest

from cc_nemo.launch.claude_env import (
    MAX_OUTPUT_TOKENS_CAP,
    REMOVED_VARS,
    build_claude_env,
    default_vars,
    forced_vars,
)
from cc_nemo.settings.catalog import Catalog, ModelSpec
from cc_nemo.settings.runtime import ProviderSettings, ProxySettings

BASE_URL = "http://127.0.0.1:43210"
TOKEN = "session-token-abc123"
CATALOG = Catalog.build()


def settings_for(
    main: str = "nemotron", small: str | None = None, subagent: str | None = None, **extra: object
) -> ProxySettings:
    main_spec = CATALOG.resolve(main)
    return ProxySettings(
        provider=ProviderSettings("cloudflare", "http://127.0.0.1:1/v1/acct/gw"),
        catalog=CATALOG,
        main_model=main_spec,
        small_model=CATALOG.resolve(small) if small else main_spec,
        subagent_model=CATALOG.resolve(subagent) if subagent else None,
        session_token=TOKEN,
        **extra,  # type: ignore[arg-type]
    )


def test_points_claude_at_the_proxy_with_the_session_token_as_bearer() -> None:
    env = build_claude_env({}, settings_for(), BASE_URL)
    assert env["ANTHROPIC_BASE_URL"] == BASE_URL
    assert env["ANTHROPIC_AUTH_TOKEN"] == TOKEN


@pytest.mark.parametrize("name", REMOVED_VARS)
def test_removes_variables_that_would_bypass_or_confuse_the_proxy(name: str) -> None:
    env = build_claude_env({name: "something", "HOME": "/home/u"}, settings_for(), BASE_URL)
    assert name not in env
    assert env["HOME"] == "/home/u"


def test_user_cannot_override_base_url_token_or_models() -> None:
    user_env = dict.fromkeys(forced_vars(settings_for(), BASE_URL), "user-value")
    env = build_claude_env(user_env, settings_for(), BASE_URL)
    assert env["ANTHROPIC_BASE_URL"] == BASE_URL
    assert env["ANTHROPIC_AUTH_TOKEN"] == TOKEN
    assert env["ANTHROPIC_MODEL"] == "nemotron"
    assert "user-value" not in env.values()


@pytest.mark.parametrize("name", sorted(default_vars(settings_for())))
def test_user_environment_overrides_each_default(name: str) -> None:
    env = build_claude_env({name: "42"}, settings_for(), BASE_URL)
    assert env[name] == "42"


def test_models_map_claude_aliases_onto_main_small_and_subagent() -> None:
    env = build_claude_env(
        {}, settings_for("nemotron", small="glm-flash", subagent="kimi"), BASE_URL
    )
    assert env["ANTHROPIC_MODEL"] == "nemotron"
    assert env["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "nemotron"
    assert env["ANTHROPIC_DEFAULT_SONNET_MODEL"] == "nemotron"
    assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "glm-flash"
    assert env["ANTHROPIC_SMALL_FAST_MODEL"] == "glm-flash"
    assert env["CLAUDE_CODE_SUBAGENT_MODEL"] == "kimi"


def test_subagent_defaults_to_the_main_model() -> None:
    env = build_claude_env({}, settings_for("gpt-oss"), BASE_URL)
    assert env["CLAUDE_CODE_SUBAGENT_MODEL"] == "gpt-oss"
    assert env["ANTHROPIC_SMALL_FAST_MODEL"] == "gpt-oss"


@pytest.mark.parametrize(
    ("main", "subagent", "window"),
    [
        ("nemotron", None, 256_000),
        ("gpt-oss", None, 128_000),
        ("nemotron", "gpt-oss", 128_000),  # the smaller conversation model decides
        ("llama", None, 24_000),
    ],
)
def test_compact_window_is_the_real_context_window(
    main: str, subagent: str | None, window: int
) -> None:
    env = build_claude_env({}, settings_for(main, subagent=subagent), BASE_URL)
    assert env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == str(window)


@pytest.mark.parametrize(("main", "window"), [("nemotron", 256_000), ("llama", 24_000)])
def test_claude_meters_the_main_models_real_window_unless_the_user_says_otherwise(
    main: str, window: int
) -> None:
    env = build_claude_env({}, settings_for(main), BASE_URL)
    assert env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == str(window)
    mine = build_claude_env(
        {"CLAUDE_CODE_MAX_CONTEXT_TOKENS": "100000"}, settings_for(main), BASE_URL
    )
    assert mine["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "100000"


@pytest.mark.parametrize(
    ("main", "expected"),
    [
        ("nemotron", MAX_OUTPUT_TOKENS_CAP),  # 256K output limit: capped
        ("gpt-oss", 32_000),  # 32768: capped
        ("llama", 8_192),  # below the cap: the model's own limit
        ("gemma4", 16_384),
    ],
)
def test_max_output_tokens_is_the_model_limit_capped(main: str, expected: int) -> None:
    env = build_claude_env({}, settings_for(main), BASE_URL)
    assert env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == str(expected)


def test_max_output_tokens_leaves_half_the_window_for_input() -> None:
    tiny = ModelSpec("tiny", "@cf/x/tiny", context_window=8_000, max_output_tokens=8_000)
    catalog = Catalog.build([tiny])
    settings = dataclasses.replace(
        settings_for(), catalog=catalog, main_model=tiny, small_model=tiny
    )
    assert build_claude_env({}, settings, BASE_URL)["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "4000"


def test_api_timeout_outlasts_the_proxy_upstream_wait() -> None:
    assert build_claude_env({}, settings_for(), BASE_URL)["API_TIMEOUT_MS"] == "660000"
    slow = settings_for(first_byte_timeout=1200.0)
    assert build_claude_env({}, slow, BASE_URL)["API_TIMEOUT_MS"] == "1260000"
    quick = settings_for(first_byte_timeout=30.0)
    assert build_claude_env({}, quick, BASE_URL)["API_TIMEOUT_MS"] == "600000"


@pytest.mark.parametrize(
    ("commit_timeout", "expected"),
    [(120.0, "180000"), (0.5, "60500"), (0.0, "60000"), (3600.0, "1800000")],
)
def test_claude_waits_for_headers_longer_than_the_proxy_holds_them(
    commit_timeout: float, expected: str
) -> None:
    settings = settings_for(commit_timeout=commit_timeout)
    assert build_claude_env({}, settings, BASE_URL)["CLAUDE_STREAM_FIRST_BYTE_TIMEOUT_MS"] == (
        expected
    )
    mine = {"CLAUDE_STREAM_FIRST_BYTE_TIMEOUT_MS": "20000"}
    assert build_claude_env(mine, settings, BASE_URL)["CLAUDE_STREAM_FIRST_BYTE_TIMEOUT_MS"] == (
        "20000"
    )


def test_quiets_claude_and_keeps_it_streaming() -> None:
    env = build_claude_env({}, settings_for(), BASE_URL)
    for name in (
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        "DISABLE_TELEMETRY",
        "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL",
        "CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK",
    ):
        assert env[name] == "1"


@pytest.mark.parametrize(
    ("user_env", "expected"),
    [
        ({}, "127.0.0.1,localhost"),
        ({"NO_PROXY": "corp.example"}, "corp.example,127.0.0.1,localhost"),
        ({"no_proxy": "a.example, localhost"}, "a.example,localhost,127.0.0.1"),
        (
            {"NO_PROXY": "a.example", "no_proxy": "b.example,a.example"},
            "a.example,b.example,127.0.0.1,localhost",
        ),
        ({"NO_PROXY": "*"}, "*,127.0.0.1,localhost"),
    ],
)
def test_no_proxy_appends_loopback_to_the_users_list(
    user_env: dict[str, str], expected: str
) -> None:
    env = build_claude_env(user_env, settings_for(), BASE_URL)
    assert env["NO_PROXY"] == expected
    assert env["no_proxy"] == expected


def test_unrelated_user_variables_pass_through_unchanged() -> None:
    user_env = {"PATH": "/usr/bin", "TERM": "xterm-256color", "ANTHROPIC_CUSTOM_HEADERS": "X-A: b"}
    env = build_claude_env(user_env, settings_for(), BASE_URL)
    for name, value in user_env.items():
        assert env[name] == value


def test_the_users_mapping_is_not_modified() -> None:
    user_env = {"ANTHROPIC_API_KEY": "sk-user", "NO_PROXY": "x"}
    build_claude_env(user_env, settings_for(), BASE_URL)
    assert user_env == {"ANTHROPIC_API_KEY": "sk-user", "NO_PROXY": "x"}


def test_claude_discovers_the_proxys_models_for_its_picker() -> None:
    env = build_claude_env({}, settings_for(), BASE_URL)
    assert env["CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY"] == "1"
    mine = build_claude_env(
        {"CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "0"}, settings_for(), BASE_URL
    )
    assert mine["CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY"] == "0"


@pytest.mark.parametrize(
    ("main", "name", "description"),
    [
        (
            "nemotron",
            "Nemotron 3 120B · Workers AI",
            "256k context · $0.5 in / $1.5 out per Mtok · via cc-proxy",
        ),
        (
            "kimi",
            "Kimi K2.6 · Workers AI",
            "262k context · $0.95 in / $4 out per Mtok · via cc-proxy",
        ),
    ],
)
def test_the_picker_names_the_session_model_as_a_person_knows_it(
    main: str, name: str, description: str
) -> None:
    env = build_claude_env({}, settings_for(main), BASE_URL)
    assert env["ANTHROPIC_CUSTOM_MODEL_OPTION"] == main
    assert env["ANTHROPIC_CUSTOM_MODEL_OPTION_NAME"] == name
    assert env["ANTHROPIC_CUSTOM_MODEL_OPTION_DESCRIPTION"] == description


def test_a_user_model_without_a_title_is_named_by_alias_and_upstream_id() -> None:
    spec = ModelSpec("mine", "qwen2.5:7b", 32_000, 4_096)
    settings = dataclasses.replace(settings_for(), main_model=spec, small_model=spec)
    env = build_claude_env({}, settings, BASE_URL)
    assert env["ANTHROPIC_CUSTOM_MODEL_OPTION_NAME"] == "mine · qwen2.5:7b"
    assert env["ANTHROPIC_CUSTOM_MODEL_OPTION_DESCRIPTION"] == "32k context · via cc-proxy"


def test_claudes_own_model_slots_say_which_of_our_models_they_are() -> None:
    env = build_claude_env({}, settings_for("nemotron", small="gemma4"), BASE_URL)
    for slot in ("OPUS", "SONNET", "FABLE"):
        assert env[f"ANTHROPIC_DEFAULT_{slot}_MODEL"] == "nemotron"
        assert env[f"ANTHROPIC_DEFAULT_{slot}_MODEL_NAME"] == f"nemotron (as {slot.title()})"
        assert env[f"ANTHROPIC_DEFAULT_{slot}_MODEL_DESCRIPTION"].startswith(
            "Nemotron 3 120B · Workers AI · 256k context"
        )
    assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL_NAME"] == "gemma4 (as Haiku)"
    assert "$0.1 in / $0.3 out" in env["ANTHROPIC_DEFAULT_HAIKU_MODEL_DESCRIPTION"]
