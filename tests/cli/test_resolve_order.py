"""The order in which `cc-proxy run` reports mistakes."""

from __future__ import annotations

import pytest

from cc_nemo.errors import UserError
from cc_nemo.settings.config import Config
from cc_nemo.settings.resolve import resolve_proxy_settings


def test_unknown_model_is_reported_before_missing_credentials() -> None:
    with pytest.raises(UserError, match="unknown model 'nosuch'"):
        resolve_proxy_settings("nosuch", session_token="t" * 32, config=Config())


def test_unknown_small_model_is_reported_before_missing_credentials() -> None:
    with pytest.raises(UserError, match="unknown model 'nope'"):
        resolve_proxy_settings(
            "nemotron", small_model="nope", session_token="t" * 32, config=Config()
        )


def test_known_model_without_credentials_points_to_login() -> None:
    with pytest.raises(UserError, match="cc-proxy login"):
        resolve_proxy_settings("nemotron", session_token="t" * 32, config=Config())
