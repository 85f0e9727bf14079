"""Secrets: env over keyring over file, the 0600 file fallback, masking and redaction."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from cc_nemo.errors import UserError
from cc_nemo.settings import credentials
from cc_nemo.settings.config import config_dir
from cc_nemo.settings.credentials import (
    delete_secret,
    get_secret,
    keyring_backend_name,
    keyring_usable,
    mask,
    redact,
    secrets_file_path,
    set_secret,
    stored_secret,
    validate_secret,
)
from tests.cli.conftest import CF_API_TOKEN, GATEWAY_TOKEN
from tests.cli.memkeyring import MemoryKeyring


def test_without_a_usable_keyring_secrets_go_to_a_0600_file_in_a_0700_dir() -> None:
    assert not keyring_usable()
    assert set_secret("aig_token", GATEWAY_TOKEN) == "file"
    assert get_secret("aig_token") == (GATEWAY_TOKEN, "file")
    assert stat.S_IMODE(secrets_file_path().stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir().stat().st_mode) == 0o700


def test_with_a_working_keyring_secrets_go_to_the_keyring_under_service_cc_proxy(
    memory_keyring: MemoryKeyring,
) -> None:
    assert keyring_usable()
    assert set_secret("cloudflare_api_token", CF_API_TOKEN) == "keyring"
    assert memory_keyring.store[("cc-proxy", "cloudflare_api_token")] == CF_API_TOKEN
    assert get_secret("cloudflare_api_token") == (CF_API_TOKEN, "keyring")
    assert not secrets_file_path().exists()


def test_storing_in_the_keyring_removes_a_stale_copy_from_the_file() -> None:
    set_secret("aig_token", "old-token-in-the-file-1234")
    import keyring

    keyring.set_keyring(MemoryKeyring())
    assert set_secret("aig_token", GATEWAY_TOKEN) == "keyring"
    assert not secrets_file_path().exists()
    assert stored_secret("aig_token") == (GATEWAY_TOKEN, "keyring")


@pytest.mark.parametrize(
    ("env_name", "secret_name"),
    [
        ("CF_AIG_TOKEN", "aig_token"),
        ("CLOUDFLARE_API_TOKEN", "cloudflare_api_token"),
        ("CC_PROXY_API_KEY", "api_key"),
    ],
)
def test_environment_variable_overrides_the_stored_secret(
    monkeypatch: pytest.MonkeyPatch, env_name: str, secret_name: credentials.SecretName
) -> None:
    set_secret(secret_name, "stored-value-000000000")
    monkeypatch.setenv(env_name, "from-env-111111111111")
    assert get_secret(secret_name) == ("from-env-111111111111", "env")
    assert stored_secret(secret_name) == ("stored-value-000000000", "file")


def test_missing_secret_reports_missing() -> None:
    assert get_secret("api_key") == (None, "missing")


def test_delete_removes_the_secret_from_keyring_and_file(memory_keyring: MemoryKeyring) -> None:
    set_secret("aig_token", GATEWAY_TOKEN)
    delete_secret("aig_token")
    delete_secret("aig_token")  # deleting twice is fine
    assert get_secret("aig_token") == (None, "missing")


def test_delete_raises_when_the_keyring_keeps_the_secret(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyring.errors import KeyringLocked

    set_secret("aig_token", GATEWAY_TOKEN)

    def locked(service: str, username: str) -> None:
        raise KeyringLocked("locked")

    monkeypatch.setattr(memory_keyring, "delete_password", locked)
    with pytest.raises(UserError, match="could not remove the AI Gateway token"):
        delete_secret("aig_token")
    assert get_secret("aig_token") == (GATEWAY_TOKEN, "keyring")


def test_delete_without_any_keyring_only_clears_the_file() -> None:
    assert not keyring_usable()  # the failing backend raises on every call, delete too
    set_secret("aig_token", GATEWAY_TOKEN)
    delete_secret("aig_token")
    assert get_secret("aig_token") == (None, "missing")


def test_deleting_the_last_file_secret_removes_the_file() -> None:
    set_secret("aig_token", GATEWAY_TOKEN)
    set_secret("api_key", CF_API_TOKEN)
    delete_secret("aig_token")
    assert secrets_file_path().exists()
    delete_secret("api_key")
    assert not secrets_file_path().exists()


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        ("", "-"),
        ("short", "••••••••"),
        ("elevenchars", "••••••••"),
        ("twelve-chars", "••••hars"),
        (GATEWAY_TOKEN, "••••cdef"),
    ],
)
def test_mask_shows_the_last_four_only_for_secrets_of_twelve_or_more(
    value: str | None, shown: str
) -> None:
    assert mask(value) == shown


def test_redact_scrubs_every_secret_seen_and_every_secret_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_secret("aig_token", GATEWAY_TOKEN)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", CF_API_TOKEN)
    text = redact(f"header was Bearer {GATEWAY_TOKEN} and {CF_API_TOKEN}.")
    assert GATEWAY_TOKEN not in text and CF_API_TOKEN not in text
    assert text == "header was Bearer •••• and ••••."


@pytest.mark.parametrize("bad", ["", "   ", "two words", "line\nbreak", "tab\there", "nul\x00x"])
def test_invalid_secret_is_rejected_without_echoing_it(bad: str) -> None:
    with pytest.raises(UserError) as caught:
        validate_secret("aig_token", bad)
    assert "AI Gateway token" in caught.value.message
    if bad.strip():
        assert bad not in caught.value.message


def test_pasted_secret_is_stripped() -> None:
    assert validate_secret("api_key", f"  {CF_API_TOKEN}\n") == CF_API_TOKEN


def test_backend_name_names_the_fail_backend() -> None:
    assert keyring_backend_name() == "keyring.backends.fail.Keyring"


def test_broken_keyring_backend_falls_back_to_the_file() -> None:
    import keyring

    class BrokenKeyring(MemoryKeyring):
        def set_password(self, service: str, username: str, password: str) -> None:
            raise RuntimeError("D-Bus said no")

        def get_password(self, service: str, username: str) -> str | None:
            raise RuntimeError("D-Bus said no")

    keyring.set_keyring(BrokenKeyring())
    assert set_secret("aig_token", GATEWAY_TOKEN) == "file"
    assert get_secret("aig_token") == (GATEWAY_TOKEN, "file")
    assert "D-Bus said no" in (credentials.keyring_problem() or "")


def test_world_readable_secrets_file_is_reported() -> None:
    set_secret("aig_token", GATEWAY_TOKEN)
    secrets_file_path().chmod(0o644)
    assert "chmod 600" in (credentials.secrets_file_problem() or "")


def words_printed_by(probe: str) -> list[str]:
    """Run `probe` in a fresh interpreter (nothing imported yet); the words it printed."""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_reading_a_secret_from_the_fallback_file_does_not_start_keyring() -> None:
    set_secret("aig_token", GATEWAY_TOKEN)
    probe = (
        "import sys\n"
        "from cc_nemo.settings.credentials import get_secret\n"
        "print(get_secret('aig_token')[1], 'keyring' in sys.modules)\n"
    )
    assert words_printed_by(probe) == ["file", "False"]


def test_resolving_file_stored_credentials_does_not_start_keyring() -> None:
    """The optional Cloudflare API token is looked up only where the gateway token was found,
    so `cc-proxy run` on a machine without a keyring never pays its start-up."""
    set_secret("aig_token", GATEWAY_TOKEN)
    probe = (
        "import sys\n"
        "from cc_nemo.settings.config import Config\n"
        "from cc_nemo.settings.resolve import resolve_provider\n"
        "provider = resolve_provider(Config(gateway_url="
        "'https://gateway.ai.cloudflare.com/v1/0123456789abcdef0123456789abcdef/gw'))\n"
        "print(sorted(provider.headers), 'keyring' in sys.modules)\n"
    )
    assert words_printed_by(probe) == ["['cf-aig-authorization']", "False"]


def test_a_secret_is_redacted_as_soon_as_it_is_validated() -> None:
    """`login` verifies a typed token before storing it: an upstream message that echoes it
    must already be redacted."""
    token = validate_secret("aig_token", "  freshly-typed-token-0123456789  ")
    assert token not in credentials.redact(f"bad token {token}")
