"""`cc-proxy status`: sources of every setting, masked secrets, the claude binary."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cc_nemo.cli import status as cli_status
from cc_nemo.settings.credentials import set_secret
from tests.cli.conftest import API_KEY, CF_API_TOKEN, GATEWAY_TOKEN, run_cli
from tests.cli.memkeyring import MemoryKeyring

# Where scripts/check installs the pinned client.
REAL_CLAUDE = Path(__file__).resolve().parents[2] / ".e2e" / "node_modules" / ".bin" / "claude"


def fake_claude(directory: Path, script: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / "claude"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def claude_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = fake_claude(tmp_path / "bin", 'echo "2.1.330 (Claude Code)"')
    monkeypatch.setenv("PATH", str(path.parent))
    return path


def rows_of(stdout: str) -> dict[str, str]:
    """The status table as {label: value} (labels are the known ones; values may wrap)."""
    rows: dict[str, str] = {}
    for line in stdout.splitlines():
        label, _, value = line.partition("  ")
        if label and value:
            rows[label.strip()] = value.strip()
    return rows


def test_status_shows_each_secret_masked_with_its_source(
    claude_on_path: Path, monkeypatch: pytest.MonkeyPatch, memory_keyring: MemoryKeyring
) -> None:
    set_secret("aig_token", GATEWAY_TOKEN)  # keyring
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", CF_API_TOKEN)  # env
    monkeypatch.setenv("CF_AI_GATEWAY_URL", "https://gateway.ai.cloudflare.com/v1/acct/gw")
    result = run_cli("status")
    assert result.exit_code == 0, result.output
    rows = rows_of(result.stdout)
    assert rows["AI Gateway token"] == "••••cdef (keyring)"
    assert rows["Cloudflare API token"] == "••••zyxw (env) [CLOUDFLARE_API_TOKEN]"
    assert rows["API key"] == "missing"
    assert rows["Provider"] == "cloudflare (env)"
    assert rows["Gateway URL"] == "https://gateway.ai.cloudflare.com/v1/acct/gw (env)"
    assert rows["Account id"] == "acct"
    assert rows["Keyring backend"] == "tests.cli.memkeyring.MemoryKeyring"
    assert rows["claude"] == f"{claude_on_path} (2.1.330 (Claude Code))"
    assert rows["Default model"] == "nemotron (default)"
    assert result.stdout.rstrip().endswith("Ready.")
    for secret in (GATEWAY_TOKEN, CF_API_TOKEN):
        assert secret not in result.output


def test_status_reports_file_secrets_and_the_unusable_keyring(claude_on_path: Path) -> None:
    set_secret("api_key", API_KEY)
    set_secret("aig_token", "short-tok")
    result = run_cli("status")
    rows = rows_of(result.stdout)
    assert rows["API key"] == "••••6666 (file)"
    assert rows["AI Gateway token"] == "•••••••• (file)"  # under 12 characters: nothing shown
    assert rows["Keyring backend"] == "keyring.backends.fail.Keyring (not usable)"
    assert rows["Secrets file"].endswith("secrets.toml (mode 0600)")
    assert "short-tok" not in result.output and API_KEY not in result.output


def test_status_shows_config_path_and_model_choices_with_sources(
    claude_on_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_user_dirs: Path
) -> None:
    assert run_cli("models", "default", "kimi", "--small", "glm-flash").exit_code == 0
    monkeypatch.setenv("CC_PROXY_SUBAGENT_MODEL", "gemma4")
    rows = rows_of(run_cli("status").stdout)
    assert rows["Config file"] == str(isolated_user_dirs / "config" / "cc-proxy" / "config.toml")
    assert rows["Default model"] == "kimi → workers-ai/@cf/moonshotai/kimi-k2.6 (config)"
    assert rows["Small model"] == "glm-flash → workers-ai/@cf/zai-org/glm-4.7-flash (config)"
    assert rows["Subagent model"] == "gemma4 → workers-ai/@cf/google/gemma-4-26b-a4b-it (env)"


def test_status_without_credentials_says_not_ready_and_exits_1(claude_on_path: Path) -> None:
    result = run_cli("status")
    assert result.exit_code == 1
    assert "Not ready: No credentials found: run `cc-proxy login`" in result.stdout
    assert rows_of(result.stdout)["Config file"].endswith("(not created yet)")


def test_status_without_claude_on_path_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CF_AI_GATEWAY_URL", "https://gateway.ai.cloudflare.com/v1/acct/gw")
    monkeypatch.setenv("CF_AIG_TOKEN", GATEWAY_TOKEN)
    result = run_cli("status")
    assert result.exit_code == 1
    assert "npm install -g @anthropic-ai/claude-code" in result.stdout
    assert "Not ready: claude" in result.stdout


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("exec sleep 30", "gave no answer in 0.5 s"),
        ("exit 3", "`claude --version` failed (exit 3)"),
        ("true", "`claude --version` failed (exit 0)"),
    ],
)
def test_a_broken_claude_is_reported_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, expected: str
) -> None:
    path = fake_claude(tmp_path / "bin", script)
    monkeypatch.setenv("PATH", f"{path.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(cli_status, "CLAUDE_VERSION_TIMEOUT", 0.5)
    info = cli_status.find_claude()
    assert (info.path, info.version) == (str(path), None)
    assert expected in (info.problem or "")


@pytest.mark.skipif(not REAL_CLAUDE.exists(), reason="the pinned Claude Code CLI is not installed")
def test_status_finds_the_real_claude_and_its_version(monkeypatch: pytest.MonkeyPatch) -> None:
    node = shutil.which("node")
    assert node is not None
    monkeypatch.setenv("PATH", f"{REAL_CLAUDE.parent}{os.pathsep}{Path(node).parent}")
    info = cli_status.find_claude()
    assert info.problem is None, info.problem
    assert info.version is not None and "Claude Code" in info.version


def test_status_with_a_broken_config_is_one_line(
    claude_on_path: Path, isolated_user_dirs: Path
) -> None:
    path = isolated_user_dirs / "config" / "cc-proxy" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("provider = ")
    result = run_cli("status")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"cc-proxy: error: {path} is not valid TOML")
    assert len(result.stderr.splitlines()) == 1


def test_status_says_a_stored_api_token_is_unused_when_the_gateway_token_comes_from_env(
    claude_on_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_secret("cloudflare_api_token", CF_API_TOKEN)
    monkeypatch.setenv("CF_AIG_TOKEN", GATEWAY_TOKEN)
    monkeypatch.setenv("CF_AI_GATEWAY_URL", "https://gateway.ai.cloudflare.com/v1/acct/gw")
    rows = rows_of(run_cli("status").stdout)
    assert rows["Cloudflare API token"].startswith("••••zyxw (file) (not used")
