"""`cc-proxy run` on a fresh machine: offer login / a Claude Code install on a terminal, the
usual one-line error without one."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cc_nemo.cli import login as cli_login
from cc_nemo.cli import run as cli_run
from cc_nemo.cli.run import first_run_action
from cc_nemo.launch import launcher
from cc_nemo.launch.claude_install import TESTED_CLAUDE_CODE, bin_path, install_dir
from cc_nemo.settings.resolve import NO_CREDENTIALS
from tests.cli.conftest import GATEWAY_TOKEN, run_cli
from tests.cli.test_status import rows_of
from tests.launcher.test_claude_install import fake_npm, make_executable

GATEWAY_URL = "https://gateway.ai.cloudflare.com/v1/acct/gw"


@pytest.mark.parametrize(
    ("missing", "stdin_tty", "stderr_tty", "npm_found", "action"),
    [
        ("credentials", True, True, False, "offer"),
        ("credentials", False, True, False, "fail"),
        ("credentials", True, False, False, "fail"),
        ("credentials", False, False, False, "fail"),
        ("claude", True, True, True, "offer"),
        ("claude", True, True, False, "need-npm"),
        ("claude", False, True, True, "fail"),
        ("claude", True, False, True, "fail"),
        ("claude", False, False, False, "fail"),
    ],
)
def test_first_run_action(
    missing: str, stdin_tty: bool, stderr_tty: bool, npm_found: bool, action: str
) -> None:
    assert (
        first_run_action(
            missing,  # type: ignore[arg-type]
            stdin_tty=stdin_tty,
            stderr_tty=stderr_tty,
            npm_found=npm_found,
        )
        == action
    )


class Launched:
    """Stands in for launcher.run_claude: records what would be started, starts nothing."""

    def __init__(self) -> None:
        self.executable: str | None = None

    def __call__(self, settings: object, launch_for: object, *, quiet: bool = False) -> int:
        self.executable = launch_for("http://127.0.0.1:9").executable  # type: ignore[operator]
        return 7


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> Launched:
    fake = Launched()
    monkeypatch.setattr(launcher, "run_claude", fake)
    return fake


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_run, "on_terminal", lambda: (True, True))


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CF_AI_GATEWAY_URL", GATEWAY_URL)
    monkeypatch.setenv("CF_AIG_TOKEN", GATEWAY_TOKEN)


@pytest.fixture
def claude(tmp_path: Path) -> Path:
    return make_executable(tmp_path / "bin" / "claude")


def test_without_a_terminal_no_credentials_is_the_same_one_line(
    claude: Path, launched: Launched
) -> None:
    result = run_cli("run", "nemotron", "--claude", str(claude))
    assert result.exit_code == 1
    assert result.stderr == f"cc-proxy: error: {NO_CREDENTIALS}\n"
    assert "Log in now" not in result.output
    assert launched.executable is None


def test_on_a_terminal_no_means_the_same_error(
    claude: Path, launched: Launched, terminal: None
) -> None:
    result = run_cli("run", "nemotron", "--claude", str(claude), input="n\n")
    assert result.exit_code == 1
    assert "No credentials found. Log in now? [Y/n]" in result.stderr
    assert result.stderr.endswith(f"cc-proxy: error: {NO_CREDENTIALS}\n")
    assert launched.executable is None


def test_on_a_terminal_a_login_then_runs_claude(
    claude: Path, launched: Launched, terminal: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    logins = []

    def login_flow() -> None:
        logins.append(True)
        monkeypatch.setenv("CF_AI_GATEWAY_URL", GATEWAY_URL)
        monkeypatch.setenv("CF_AIG_TOKEN", GATEWAY_TOKEN)

    monkeypatch.setattr(cli_login, "login_flow", login_flow)
    result = run_cli("run", "nemotron", "--claude", str(claude), input="\n")  # Enter: yes
    assert logins == [True]
    assert launched.executable == str(claude)
    assert result.exit_code == 7, result.output


def test_a_failed_login_is_its_one_line(
    claude: Path, launched: Launched, terminal: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def login_flow() -> None:
        from cc_nemo.errors import UserError

        raise UserError("the AI Gateway token is required")

    monkeypatch.setattr(cli_login, "login_flow", login_flow)
    result = run_cli("run", "nemotron", "--claude", str(claude), input="y\n")
    assert result.exit_code == 1
    assert result.stderr.endswith("cc-proxy: error: the AI Gateway token is required\n")
    assert launched.executable is None


def test_without_a_terminal_a_missing_claude_says_how_to_install_it(
    tmp_path: Path, credentials: None, launched: Launched, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_npm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(launcher.shutil, "which", _which_but_claude(launcher.shutil.which))
    result = run_cli("run", "nemotron")
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert "Claude Code is not installed" in result.stderr
    assert "npm install -g @anthropic-ai/claude-code" in result.stderr
    assert not install_dir().exists()


def test_on_a_terminal_without_npm_a_missing_claude_asks_for_node(
    tmp_path: Path, credentials: None, launched: Launched, terminal: None
) -> None:
    result = run_cli("run", "nemotron", env={"PATH": str(tmp_path)})
    assert result.exit_code == 1
    assert result.stderr == (
        "cc-proxy: error: Claude Code is not installed and npm is not on PATH: install "
        "Node.js 18 or newer (it brings npm) and run again, or pass --claude PATH\n"
    )


def test_on_a_terminal_a_missing_claude_is_installed_and_run(
    tmp_path: Path,
    credentials: None,
    launched: Launched,
    terminal: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_npm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(launcher.shutil, "which", _which_but_claude(launcher.shutil.which))
    result = run_cli("run", "nemotron", input="y\n")
    assert f"Install Claude Code {TESTED_CLAUDE_CODE} for cc-proxy" in result.stderr
    assert launched.executable == str(bin_path(install_dir()))
    assert result.exit_code == 7, result.output
    # The second run finds it in the data dir and asks nothing.
    again = run_cli("run", "nemotron")
    assert "Install" not in again.stderr
    assert again.exit_code == 7


def test_declining_the_install_is_the_usual_error(
    tmp_path: Path,
    credentials: None,
    launched: Launched,
    terminal: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_npm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(launcher.shutil, "which", _which_but_claude(launcher.shutil.which))
    result = run_cli("run", "nemotron", input="n\n")
    assert result.exit_code == 1
    assert "cc-proxy: error: Claude Code is not installed (no `claude` on PATH)" in result.stderr
    assert not install_dir().exists()


def test_status_says_claude_came_from_cc_proxys_data_dir(
    tmp_path: Path, credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_executable(bin_path(install_dir()), '#!/bin/sh\necho "2.1.332 (Claude Code)"\n')
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = run_cli("status")
    assert result.exit_code == 0, result.output
    assert f"{bin_path(install_dir())} (2.1.332 (Claude Code))" in result.stdout
    assert rows_of(result.stdout)["claude found in"].startswith("cc-proxy's data dir (")


def test_status_names_path_and_the_env_var(
    claude: Path, credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_executable(claude, '#!/bin/sh\necho "2.1.332 (Claude Code)"\n')
    monkeypatch.setenv("PATH", str(claude.parent))
    assert rows_of(run_cli("status").stdout)["claude found in"] == "PATH"
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CC_PROXY_CLAUDE", str(claude))
    assert rows_of(run_cli("status").stdout)["claude found in"] == "$CC_PROXY_CLAUDE"


def _which_but_claude(real):  # type: ignore[no-untyped-def]
    """shutil.which that finds no `claude` (the developer's machine may have one on PATH)."""

    def which(name: str, *args: object, **kwargs: object) -> str | None:
        return None if name == "claude" else real(name, *args, **kwargs)

    return which


def test_a_real_terminal_gets_the_login_question(tmp_path: Path) -> None:
    """Through a pty: `run` asks, and "n" ends it with the usual one line and exit 1."""
    claude = make_executable(tmp_path / "bin" / "claude")
    main, child = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "cc_nemo", "run", "nemotron", "--claude", str(claude)],
        stdin=child,
        stdout=child,
        stderr=child,
        close_fds=True,
    )
    os.close(child)
    seen = b""
    answered = False
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(main, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            if not answered and b"[Y/n]" in seen:
                os.write(main, b"n\n")
                answered = True
            if process.poll() is not None and not ready:
                break
        code = process.wait(timeout=10)
    finally:
        os.close(main)
        if process.poll() is None:
            process.kill()
    text = seen.decode(errors="replace")
    assert "No credentials found. Log in now? [Y/n]" in text
    assert f"cc-proxy: error: {NO_CREDENTIALS}" in text
    assert code == 1
