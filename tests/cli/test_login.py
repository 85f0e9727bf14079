"""`cc-proxy login` / `logout` against a loopback fake gateway: storage, checks, messages."""

from __future__ import annotations

import socket
import stat

import keyring
import pytest
import typer
from keyring.errors import KeyringLocked, PasswordDeleteError

from cc_nemo.settings.config import Config, config_path, load_config
from cc_nemo.settings.credentials import get_secret, secrets_file_path, stored_secret
from tests.cli.conftest import API_KEY, CF_API_TOKEN, GATEWAY_TOKEN, CliResult, run_cli
from tests.cli.memkeyring import MemoryKeyring
from tests.fake_upstream import FakeUpstream, Reply


def gateway_url(server: FakeUpstream) -> str:
    return f"{server.url}/v1/acct/gw"


def login_with_stdin(server: FakeUpstream, *flags: str, secrets: str) -> CliResult:
    return run_cli(
        "login", "--gateway-url", gateway_url(server), "--aig-token-stdin", *flags, input=secrets
    )


def login_with_both_tokens(server: FakeUpstream) -> CliResult:
    return login_with_stdin(
        server, "--cloudflare-token-stdin", secrets=f"{GATEWAY_TOKEN}\n{CF_API_TOKEN}\n"
    )


OFFLINE_GATEWAY = "http://127.0.0.1:9/v1/a/g"  # never contacted: --no-verify


def login_unchecked(*, both_tokens: bool = False) -> CliResult:
    """Store a gateway URL and its token(s), skipping the check."""
    flags = ("--cloudflare-token-stdin",) if both_tokens else ()
    secrets = f"{GATEWAY_TOKEN}\n{CF_API_TOKEN}\n" if both_tokens else GATEWAY_TOKEN
    return run_cli(
        "login", "--gateway-url", OFFLINE_GATEWAY, "--aig-token-stdin", *flags, "--no-verify",
        input=secrets,
    )  # fmt: skip


def assert_no_secret_in(result: CliResult) -> None:
    for secret in (GATEWAY_TOKEN, CF_API_TOKEN, API_KEY):
        assert secret not in result.output


def test_scripted_login_checks_with_one_tiny_completion_and_stores_both_tokens(
    upstream: FakeUpstream,
) -> None:
    result = login_with_both_tokens(upstream)
    assert result.exit_code == 0, result.output
    [seen] = upstream.requests
    assert (seen.method, seen.path) == ("POST", "/v1/acct/gw/compat/chat/completions")
    assert seen.headers["cf-aig-authorization"] == f"Bearer {GATEWAY_TOKEN}"
    assert seen.headers["authorization"] == f"Bearer {CF_API_TOKEN}"
    assert seen.body["max_tokens"] == 1
    assert seen.body["model"] == "workers-ai/@cf/nvidia/nemotron-3-120b-a12b"
    assert load_config() == Config(provider="cloudflare", gateway_url=gateway_url(upstream))
    assert get_secret("aig_token") == (GATEWAY_TOKEN, "file")
    assert get_secret("cloudflare_api_token") == (CF_API_TOKEN, "file")
    assert "credentials verified" in result.stderr
    assert_no_secret_in(result)


def test_without_a_keyring_login_warns_once_that_secrets_are_in_a_0600_file(
    upstream: FakeUpstream,
) -> None:
    result = login_with_both_tokens(upstream)
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "no usable OS keyring" in warnings[0] and str(secrets_file_path()) in warnings[0]
    assert "0600" in warnings[0]
    assert stat.S_IMODE(secrets_file_path().stat().st_mode) == 0o600


def test_with_a_keyring_login_stores_secrets_there_and_writes_no_file(
    upstream: FakeUpstream, memory_keyring: MemoryKeyring
) -> None:
    result = login_with_stdin(upstream, secrets=f"{GATEWAY_TOKEN}\n")
    assert result.exit_code == 0, result.output
    assert memory_keyring.store == {("cc-proxy", "aig_token"): GATEWAY_TOKEN}
    assert not secrets_file_path().exists()
    assert "warning" not in result.stderr
    assert "stored in the OS keyring" in result.stderr


def test_interactive_login_prompts_for_url_and_hidden_tokens(upstream: FakeUpstream) -> None:
    result = run_cli("login", input=f"{gateway_url(upstream)}\n{GATEWAY_TOKEN}\n\n")
    assert result.exit_code == 0, result.output
    assert "authorization" not in upstream.requests[0].headers  # optional token skipped
    assert load_config().gateway_url == gateway_url(upstream)
    assert stored_secret("cloudflare_api_token") == (None, "missing")
    assert_no_secret_in(result)


def test_interactive_login_builds_the_url_from_an_account_id_and_gateway_name() -> None:
    account = "0123456789abcdef0123456789abcdef"
    result = run_cli("login", "--no-verify", input=f"{account}\nmain\n{GATEWAY_TOKEN}\n\n")
    assert result.exit_code == 0, result.output
    assert load_config().gateway_url == f"https://gateway.ai.cloudflare.com/v1/{account}/main"


def test_account_id_and_gateway_flags_build_the_url() -> None:
    account = "0123456789abcdef0123456789abcdef"
    result = run_cli(
        "login", "--account-id", account, "--gateway", "gw1", "--aig-token-stdin", "--no-verify",
        input=GATEWAY_TOKEN,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_config().gateway_url == f"https://gateway.ai.cloudflare.com/v1/{account}/gw1"


def test_relogin_with_enter_keeps_the_stored_gateway_token(upstream: FakeUpstream) -> None:
    assert login_with_stdin(upstream, secrets=GATEWAY_TOKEN).exit_code == 0
    result = run_cli("login", input="\n\n\n")  # keep URL (default), keep token, skip API token
    assert result.exit_code == 0, result.output
    assert upstream.requests[-1].headers["cf-aig-authorization"] == f"Bearer {GATEWAY_TOKEN}"
    assert get_secret("aig_token") == (GATEWAY_TOKEN, "file")


GATEWAY_2009 = {"success": False, "error": [{"code": 2009, "message": "Unauthorized"}]}
WORKERS_10000 = {
    "success": False,
    "errors": [{"code": 10000, "message": "Authentication error"}],
    "result": None,
    "messages": [],
}


@pytest.mark.parametrize(
    ("answer", "with_api_token", "expected"),
    [
        (Reply.error(401, GATEWAY_2009), True, "the AI Gateway token was rejected (cf-aig-authorization, code 2009"),
        (Reply.error(401, WORKERS_10000), True, "the Cloudflare API token was rejected by Workers AI"),
        (Reply.error(403, WORKERS_10000), False, "also give a Cloudflare API token"),
        (Reply.error(400, {"success": False, "error": [{"code": 2001, "message": "no gw"}]}), True, "no such AI Gateway"),
        (Reply.error(404, {"success": False, "errors": [{"code": 7003, "message": "Could not route"}]}), True, "check the account id"),
        (Reply.error(500, {"error": "boom"}), True, "the test request failed (HTTP 500: boom)"),
    ],
)  # fmt: skip
def test_failed_check_names_the_failing_token_and_stores_nothing(
    upstream: FakeUpstream, answer: Reply, with_api_token: bool, expected: str
) -> None:
    upstream.enqueue(answer)
    flags = ("--cloudflare-token-stdin",) if with_api_token else ()
    secrets = f"{GATEWAY_TOKEN}\n{CF_API_TOKEN}\n" if with_api_token else GATEWAY_TOKEN
    result = login_with_stdin(upstream, *flags, secrets=secrets)
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("cc-proxy: error: ")
    assert expected in line
    assert "Traceback" not in result.output
    assert not config_path().exists()
    assert stored_secret("aig_token") == (None, "missing")
    assert_no_secret_in(result)


@pytest.mark.parametrize(
    "answer",
    [
        Reply.error(429, {"errors": [{"code": 3040, "message": "Capacity temporarily exceeded"}]}),
        Reply.error(403, {"errors": [{"code": 5035, "message": "needs Workers Paid"}]}),
    ],
)
def test_errors_after_authentication_still_count_as_accepted_credentials(
    upstream: FakeUpstream, answer: Reply
) -> None:
    upstream.enqueue(answer)
    result = login_with_stdin(upstream, secrets=GATEWAY_TOKEN)
    assert result.exit_code == 0, result.output
    assert "credentials accepted" in result.stderr
    assert get_secret("aig_token")[0] == GATEWAY_TOKEN


def test_upstream_message_echoing_the_token_is_redacted(upstream: FakeUpstream) -> None:
    upstream.enqueue(
        Reply.error(401, {"error": [{"code": 2009, "message": f"bad token {GATEWAY_TOKEN}"}]})
    )
    result = login_with_stdin(upstream, secrets=GATEWAY_TOKEN)
    assert result.exit_code == 1
    assert "bad token ••••" in result.stderr
    assert_no_secret_in(result)


def test_unreachable_gateway_is_one_line_naming_the_host() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        result = run_cli(
            "login", "--gateway-url", f"http://127.0.0.1:{port}/v1/acct/gw", "--aig-token-stdin",
            input=GATEWAY_TOKEN,
        )  # fmt: skip
    assert result.exit_code == 1
    assert f"cannot reach 127.0.0.1:{port}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2  # "Checking…" note + the error


def test_no_verify_makes_no_request(upstream: FakeUpstream) -> None:
    result = login_with_stdin(upstream, "--no-verify", secrets=GATEWAY_TOKEN)
    assert result.exit_code == 0, result.output
    assert upstream.requests == []
    assert get_secret("aig_token")[0] == GATEWAY_TOKEN


@pytest.mark.parametrize(
    ("provider", "path", "auth_header", "auth_value"),
    [
        ("openai", "/v1/models", "authorization", f"Bearer {API_KEY}"),
        ("anthropic", "/v1/models", "x-api-key", API_KEY),
    ],
)
def test_generic_provider_login_checks_the_model_listing_with_the_key(
    upstream: FakeUpstream, provider: str, path: str, auth_header: str, auth_value: str
) -> None:
    result = run_cli(
        "login", "--provider", provider, "--base-url", f"{upstream.url}/v1", "--api-key-stdin",
        input=API_KEY,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [seen] = upstream.requests
    assert (seen.method, seen.path, seen.headers[auth_header]) == ("GET", path, auth_value)
    if provider == "anthropic":
        assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "(1 models listed)" in result.stderr
    assert load_config() == Config(provider=provider, base_url=f"{upstream.url}/v1")
    assert get_secret("api_key") == (API_KEY, "file")


def test_keyless_local_server_login_needs_no_api_key(upstream: FakeUpstream) -> None:
    upstream.listed_models = []
    result = run_cli(
        "login", "--provider", "openai", "--base-url", f"{upstream.url}/v1", input="\n"
    )
    assert result.exit_code == 0, result.output
    assert "authorization" not in upstream.requests[0].headers
    assert stored_secret("api_key") == (None, "missing")


@pytest.mark.parametrize(
    ("answer", "code", "expected"),
    [
        (
            Reply.error(401, {"error": {"message": "Invalid API key"}}),
            1,
            "the API key was rejected by",
        ),
        (Reply.error(405, {"errors": [{"code": 7001, "message": "method"}]}), 0, "saved unchecked"),
    ],
)
def test_generic_provider_check_outcomes(
    upstream: FakeUpstream, answer: Reply, code: int, expected: str
) -> None:
    upstream.enqueue(answer)
    result = run_cli(
        "login", "--provider", "openai", "--base-url", f"{upstream.url}/v1", "--api-key-stdin",
        input=API_KEY,
    )  # fmt: skip
    assert result.exit_code == code
    assert expected in result.stderr
    assert_no_secret_in(result)


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (("--gateway-url", "http://127.0.0.1:9/v1/a/g", "--aig-token-stdin", "--cloudflare-token-stdin"), "only-one-line-token\n", "expected 2 line(s) on stdin"),
        (("--gateway-url", "http://127.0.0.1:9/v1/a/g", "--base-url", "http://x"), "", "do not mix them"),
        (("--gateway-url", "http://127.0.0.1:9/v1/a/g", "--cloudflare-token-stdin"), "tok-tok-tok-tok\n", "add --aig-token-stdin"),
        (("--provider", "azure"), "", "--provider must be one of"),
        (("--provider", "openai", "--api-key-stdin"), "key-key-key-key\n", "pass --base-url"),
        (("--account-id", "0123456789abcdef0123456789abcdef"), "", "--account-id and --gateway go together"),
        (("--gateway-url", "not a url", "--aig-token-stdin"), "tok-tok-tok-tok\n", "must look like"),
        ((), "", "no input for the prompt (stdin is closed); pass --gateway-url"),
        (("--gateway-url", "http://127.0.0.1:9/v1/a/g", "--aig-token-stdin"), "two words\n", "contains spaces"),
    ],
)  # fmt: skip
def test_login_mistakes_are_one_clear_line(
    args: tuple[str, ...], stdin: str, expected: str
) -> None:
    result = run_cli("login", "--no-verify", *args, input=stdin)
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("cc-proxy: error: ") and expected in last, result.output
    assert "Traceback" not in result.output


def test_login_warns_when_an_environment_variable_overrides_the_stored_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CF_AIG_TOKEN", "another-token-from-env-0000")
    result = login_unchecked()
    assert result.exit_code == 0
    assert "CF_AIG_TOKEN is set in the environment and overrides the stored value" in result.stderr


def test_logout_removes_stored_secrets_and_keeps_the_config(memory_keyring: MemoryKeyring) -> None:
    login_unchecked(both_tokens=True)
    result = run_cli("logout")
    assert result.exit_code == 0
    assert "AI Gateway token (from keyring)" in result.stderr
    assert "Cloudflare API token (from keyring)" in result.stderr
    assert memory_keyring.store == {}
    assert load_config().gateway_url == OFFLINE_GATEWAY
    assert "No stored secrets" in run_cli("logout").stderr


class RefusingKeyring(MemoryKeyring):
    """The in-memory keyring, except that deleting the AI Gateway token fails (locked)."""

    error: Exception = KeyringLocked("the collection is locked")

    def delete_password(self, service: str, username: str) -> None:
        if username == "aig_token":
            raise self.error
        super().delete_password(service, username)


@pytest.mark.parametrize(
    "error",
    [KeyringLocked("the collection is locked"), PasswordDeleteError("access denied")],
    ids=["locked", "delete-error-but-still-stored"],
)
def test_logout_says_so_when_the_keyring_keeps_a_token(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    login_unchecked(both_tokens=True)
    monkeypatch.setattr(RefusingKeyring, "error", error)
    keyring.set_keyring(RefusingKeyring())
    result = run_cli("logout")
    assert result.exit_code == 1
    assert "Removed: Cloudflare API token (from keyring)" in result.stderr
    assert "AI Gateway token (from keyring)" not in result.stderr
    [error_line] = [line for line in result.stderr.splitlines() if "error" in line]
    assert error_line.startswith("cc-proxy: error: could not remove the AI Gateway token")
    assert type(error).__name__ in error_line
    assert stored_secret("aig_token") == (GATEWAY_TOKEN, "keyring")
    assert stored_secret("cloudflare_api_token") == (None, "missing")
    assert_no_secret_in(result)


def test_logout_removes_the_fallback_file_and_mentions_env_still_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    login_unchecked()
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", CF_API_TOKEN)
    result = run_cli("logout")
    assert "AI Gateway token (from file)" in result.stderr
    assert not secrets_file_path().exists()
    assert "CLOUDFLARE_API_TOKEN is still set in the environment" in result.stderr
    assert_no_secret_in(result)


def test_ctrl_c_at_a_prompt_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted_prompt(*args: object, **kwargs: object) -> str:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise typer.Abort() from None  # what click's prompt does on Ctrl-C

    monkeypatch.setattr(typer, "prompt", interrupted_prompt)
    result = run_cli("login")
    assert result.exit_code == 130
    assert "error" not in result.stderr
