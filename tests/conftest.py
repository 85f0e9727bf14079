"""Isolate every test from the developer's real config, keyring and environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures"]

_LEAKY_ENV = (
    "CF_AI_GATEWAY_URL",
    "CF_AIG_TOKEN",
    "CLOUDFLARE_API_TOKEN",
    "CC_PROXY_PROVIDER",
    "CC_PROXY_BASE_URL",
    "CC_PROXY_API_KEY",
    "CC_PROXY_MODEL",
    "CC_PROXY_SMALL_MODEL",
    "CC_PROXY_SUBAGENT_MODEL",
    "CC_PROXY_CF_API_BASE",
    "CC_PROXY_DEBUG",
    "CC_PROXY_TOKEN",
    "CC_PROXY_CLAUDE",
    "CC_PROXY_GATEWAY_ENDPOINT",
    "CLOUDFLARE_ACCOUNT_ID",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
)


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point platformdirs at a temp tree and select the always-failing keyring backend,
    so no test can read or write the developer's real credentials; and the usage ledger at
    the temp tree's data directory, whatever the platform's rules or the developer's
    $CC_PROXY_LEDGER say."""
    home = tmp_path / "home"
    for sub in ("config", "data", "state", "cache"):
        (home / sub).mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.setenv("CC_PROXY_LEDGER", str(home / "data" / "cc-proxy" / "usage.sqlite3"))
    for name in _LEAKY_ENV:
        monkeypatch.delenv(name, raising=False)
    # The redaction registry is process-wide: a test must not pass on secrets another test saw.
    from cc_nemo.settings import credentials

    monkeypatch.setattr(credentials, "_seen_secrets", set())
    yield home
