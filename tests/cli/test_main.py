"""The entry point: help, version, fast start, and one line (never a traceback) on failure."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer

from cc_nemo import __version__
from cc_nemo.cli import main as cli
from cc_nemo.errors import UserError
from tests.cli.conftest import GATEWAY_TOKEN, run_cli

CC_PROXY = Path(sys.executable).parent / "cc-proxy"
COMMANDS = ("login", "logout", "status", "models")


def run_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=60,
        env=env or dict(os.environ),
        check=False,
    )


@pytest.mark.parametrize(
    "command", [[str(CC_PROXY)], [sys.executable, "-m", "cc_nemo"]], ids=["script", "module"]
)
def test_help_lists_every_command(command: list[str]) -> None:
    if not Path(command[0]).exists():
        pytest.skip("the cc-proxy script is not installed in this environment")
    done = run_process(*command, "--help")
    assert done.returncode == 0, done.stderr
    for name in COMMANDS:
        assert name in done.stdout


def test_no_arguments_shows_help() -> None:
    done = run_process(sys.executable, "-m", "cc_nemo")
    assert "Usage: cc-proxy" in done.stdout + done.stderr


def test_version_option_prints_the_version() -> None:
    result = run_cli("--version")
    assert (result.exit_code, result.stdout) == (0, f"cc-proxy {__version__}\n")


def test_help_imports_none_of_the_heavy_libraries() -> None:
    probe = (
        "import sys\n"
        "from cc_nemo.cli import main as cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ['aiohttp', 'rich', 'keyring', 'orjson', 'platformdirs', 'tomli_w']\n"
        "print('HEAVY=' + ','.join(m for m in heavy if m in sys.modules))\n"
    )
    done = run_process(sys.executable, "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "HEAVY="


def test_help_is_fast() -> None:
    if not CC_PROXY.exists():
        pytest.skip("the cc-proxy script is not installed in this environment")
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        run_process(str(CC_PROXY), "--help")
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.3, timings


def test_broken_config_in_a_real_process_is_one_line_and_exit_1(isolated_user_dirs: Path) -> None:
    path = isolated_user_dirs / "config" / "cc-proxy" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("[models.x]\ncontext_window = 1\n")
    done = run_process(sys.executable, "-m", "cc_nemo", "models")
    assert done.returncode == 1
    assert (
        done.stderr
        == f"cc-proxy: error: invalid setting in {path}: models.x needs a `model` (the upstream model id); fix or delete the file\n"
    )


def test_unknown_command_is_a_usage_error_not_a_traceback() -> None:
    result = run_cli("lgoin")
    assert result.exit_code == 2
    assert "No such command 'lgoin'" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["lgoin"], "No such command 'lgoin'. Did you mean 'login'? (see `cc-proxy -h`)"),
        (["logs", "--bogus"], "No such option: --bogus (see `cc-proxy logs -h`)"),
        (["models", "add"], "Missing argument 'ALIAS' (see `cc-proxy models add -h`)"),
    ],
)
def test_a_usage_mistake_in_a_real_process_is_one_line_and_exit_2(
    argv: list[str], line: str
) -> None:
    done = run_process(sys.executable, "-m", "cc_nemo", *argv)
    assert (done.returncode, done.stderr) == (2, f"cc-proxy: error: {line}\n")


@pytest.fixture
def failing_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """Swap in an app whose commands fail in each way `main` must handle."""
    app = typer.Typer()

    @app.command()
    def user_mistake() -> None:
        raise UserError("do this instead", exit_code=3)

    @app.command()
    def crash() -> None:
        raise RuntimeError(f"kaput\nwhile using {GATEWAY_TOKEN}")

    @app.command()
    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "app", app)


@pytest.mark.usefixtures("failing_app")
def test_user_error_prints_one_line_and_uses_its_exit_code() -> None:
    result = run_cli("user-mistake")
    assert (result.exit_code, result.stderr) == (3, "cc-proxy: error: do this instead\n")


@pytest.mark.usefixtures("failing_app")
def test_unexpected_exception_is_one_redacted_line_without_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CF_AIG_TOKEN", GATEWAY_TOKEN)
    result = run_cli("crash")
    assert result.exit_code == 1
    assert result.stderr == (
        "cc-proxy: error: unexpected RuntimeError: kaput while using •••• "
        "(set CC_PROXY_DEBUG=1 to see the traceback)\n"
    )


@pytest.mark.usefixtures("failing_app")
def test_debug_variable_lets_the_traceback_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC_PROXY_DEBUG", "1")
    with pytest.raises(RuntimeError, match="kaput"):
        cli.main(["crash"])


@pytest.mark.usefixtures("failing_app")
def test_ctrl_c_exits_130_quietly() -> None:
    result = run_cli("interrupted")
    assert (result.exit_code, result.stderr) == (130, "")
