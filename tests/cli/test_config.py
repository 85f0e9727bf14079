"""config.toml: defaults, round trip, validation messages that name the file, permissions."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cc_nemo.errors import UserError
from cc_nemo.settings.catalog import ModelQuirks, ModelSpec
from cc_nemo.settings.config import (
    Config,
    config_dir,
    config_path,
    load_config,
    log_dir,
    save_config,
)


def test_config_paths_follow_the_platform_user_dirs(isolated_user_dirs: Path) -> None:
    assert config_dir() == isolated_user_dirs / "config" / "cc-proxy"
    assert config_path() == config_dir() / "config.toml"
    assert log_dir().is_relative_to(isolated_user_dirs / "state")


def test_missing_config_file_means_defaults() -> None:
    assert load_config() == Config()


def test_saved_config_loads_back_identically_including_user_models_and_quirks() -> None:
    spec = ModelSpec(
        "glm53",
        "@cf/zai-org/glm-5.3",
        131_072,
        32_768,
        1.4,
        4.4,
        cached_input_price_per_mtok=0.26,
        reasoning=True,
        quirks=ModelQuirks(
            thinking_switch="enable_thinking",
            effort_levels=("low", "high"),
            history_reasoning_field="reasoning_content",
            tool_choice_any="auto",
        ),
        user_defined=True,
        note="newer GLM",
    )
    config = Config(
        provider="cloudflare",
        gateway_url="https://gateway.ai.cloudflare.com/v1/acct/gw",
        default_model="glm53",
        small_model="gemma4",
        user_models={"glm53": spec},
        proxy={"first_byte_timeout": 120.0, "max_retries": 3, "log_bodies": True},
    )
    save_config(config)
    assert load_config() == config


def test_config_file_is_0600_in_a_0700_directory() -> None:
    save_config(Config(default_model="kimi"))
    assert stat.S_IMODE(config_path().stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir().stat().st_mode) == 0o700


def test_a_user_model_needs_only_its_upstream_id() -> None:
    config_path().parent.mkdir(parents=True)
    config_path().write_text('[models.tiny]\nmodel = "@cf/org/tiny"\n')
    spec = load_config().user_models["tiny"]
    assert (spec.model, spec.context_window, spec.max_output_tokens) == (
        "@cf/org/tiny",
        128_000,
        16_384,
    )
    assert spec.user_defined


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("provider = [", "not valid TOML"),
        ('defualt_model = "kimi"', "unknown key 'defualt_model'"),
        ('provider = "azure"', "provider must be one of cloudflare, openai, anthropic"),
        ("default_model = 3", "default_model must be a string"),
        ("[models.x]\ncontext_window = 10", "models.x needs a `model`"),
        (
            '[models.x]\nmodel = "m"\ncontext_window = "big"',
            "models.x.context_window must be an integer",
        ),
        ('[models.x]\nmodel = "m"\ncontext_window = 100\nmax_output_tokens = 200', "cannot exceed"),
        ('[models.x]\nmodel = "m"\ninput_price_per_mtok = -1', "must not be negative"),
        ('[models.x]\nmodel = "m"\ncolour = "red"', "unknown key models.x.colour"),
        ('[models."a/b"]\nmodel = "m"', "invalid alias 'a/b'"),
        ('[models.x]\nmodel = "m"\n[models.x.quirks]\ntool_choice_any = "any"', "must be one of"),
        (
            '[models.x]\nmodel = "m"\n[models.x.quirks]\nflux = true',
            "unknown key models.x.quirks.flux",
        ),
        ('[models.x]\nmodel = "m"\n[models.x.quirks]\neffort_levels = "high"', "must be a list"),
        ("[proxy]\nread_timeout = -5", "proxy.read_timeout must not be negative"),
        ("[proxy]\nmax_retries = true", "proxy.max_retries must be an integer"),
        ("[proxy]\nsession_token = 'x'", "unknown key proxy.session_token"),
        ("[models.nemotron]\nfallbacks = 'kimi'", "models.nemotron.fallbacks must be a list"),
        ("[models.nemotron]\nfallbacks = [3]", "must be a list of model aliases"),
        ("[models.nemotron]\nfallbacks = ['nemotron']", "must not name nemotron itself"),
    ],
)
def test_invalid_config_is_one_user_error_naming_the_file_and_the_problem(
    text: str, expected: str
) -> None:
    config_path().parent.mkdir(parents=True)
    config_path().write_text(text)
    with pytest.raises(UserError) as caught:
        load_config()
    assert str(config_path()) in caught.value.message
    assert expected in caught.value.message
    assert "\n" not in caught.value.message


def test_unreadable_config_is_a_user_error_naming_the_file() -> None:
    config_path().mkdir(parents=True)  # a directory where the file should be: read fails
    with pytest.raises(UserError, match=r"cannot read .*config\.toml"):
        load_config()


def test_load_config_reads_an_explicit_path(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text('provider = "openai"\nbase_url = "http://127.0.0.1:1/v1"\n')
    assert load_config(path) == Config(provider="openai", base_url="http://127.0.0.1:1/v1")


def test_fallbacks_of_a_builtin_model_need_no_model_table_and_round_trip() -> None:
    config_path().parent.mkdir(parents=True)
    config_path().write_text(
        '[models.nemotron]\nfallbacks = ["kimi", "gemma4"]\n'
        '[models.tiny]\nmodel = "@cf/org/tiny"\nfallbacks = ["llama"]\n'
    )
    config = load_config()
    assert config.fallbacks == {"nemotron": ["kimi", "gemma4"], "tiny": ["llama"]}
    assert list(config.user_models) == ["tiny"]
    save_config(config)
    assert load_config() == config
