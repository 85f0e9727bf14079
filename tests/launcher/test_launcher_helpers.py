"""The launcher's small decisions: which claude, which exit code, which hosts, which lines."""

from __future__ import annotations

import shlex
import stat
from pathlib import Path

import pytest

from cc_nemo.errors import UserError
from cc_nemo.launch.launcher import (
    base_url_for,
    check_serve_host,
    exit_code_of,
    export_lines,
    find_claude,
    is_loopback,
)


def make_executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_find_claude_prefers_the_option_then_the_env_var_then_path(tmp_path: Path) -> None:
    on_path = make_executable(tmp_path / "path" / "claude")
    from_env = make_executable(tmp_path / "env" / "claude-env")
    from_option = make_executable(tmp_path / "opt" / "claude-opt")
    env = {"PATH": str(on_path.parent), "CC_PROXY_CLAUDE": str(from_env)}
    assert find_claude(str(from_option), env) == str(from_option)
    assert find_claude(None, env) == str(from_env)
    assert find_claude(None, {"PATH": str(on_path.parent)}) == str(on_path)


def test_find_claude_by_bare_name_searches_path(tmp_path: Path) -> None:
    custom = make_executable(tmp_path / "bin" / "claude-nightly")
    assert find_claude("claude-nightly", {"PATH": str(custom.parent)}) == str(custom)


@pytest.mark.parametrize(
    ("explicit", "env", "message"),
    [
        (None, {"PATH": ""}, "npm install -g @anthropic-ai/claude-code"),
        ("/nonexistent/claude", {"PATH": ""}, "--claude points at '/nonexistent/claude'"),
        (None, {"PATH": "", "CC_PROXY_CLAUDE": "/nope"}, "CC_PROXY_CLAUDE points at '/nope'"),
    ],
)
def test_find_claude_failures_say_what_to_do(
    explicit: str | None, env: dict[str, str], message: str
) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(")) as caught:
        find_claude(explicit, env)
    assert "\n" not in caught.value.message


def test_a_file_without_execute_permission_is_not_claude(tmp_path: Path) -> None:
    plain = tmp_path / "claude"
    plain.write_text("not executable")
    with pytest.raises(UserError):
        find_claude(str(plain), {"PATH": ""})


@pytest.mark.parametrize(
    ("returncode", "exit_code"), [(0, 0), (1, 1), (255, 255), (-9, 137), (-15, 143), (-2, 130)]
)
def test_exit_code_is_shell_style(returncode: int, exit_code: int) -> None:
    assert exit_code_of(returncode) == exit_code


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("host", "url"), [("127.0.0.1", "http://127.0.0.1:8080"), ("::1", "http://[::1]:8080")]
)
def test_base_url_brackets_ipv6(host: str, url: str) -> None:
    assert base_url_for(host, 8080) == url


@pytest.mark.parametrize(
    ("host", "allow_remote", "token", "explicit", "error"),
    [
        ("127.0.0.1", False, "random", False, None),
        ("0.0.0.0", False, "x" * 32, True, "--allow-remote"),
        ("0.0.0.0", True, "x" * 32, False, "your own token"),
        ("0.0.0.0", True, "short", True, "at least 16"),
        ("0.0.0.0", True, "x" * 16, True, None),
    ],
)
def test_serving_beyond_loopback_needs_opt_in_and_a_chosen_long_token(
    host: str, allow_remote: bool, token: str, explicit: bool, error: str | None
) -> None:
    if error is None:
        check_serve_host(host, allow_remote=allow_remote, token=token, explicit=explicit)
        return
    with pytest.raises(UserError, match=error):
        check_serve_host(host, allow_remote=allow_remote, token=token, explicit=explicit)


def test_export_lines_survive_a_posix_shell_round_trip() -> None:
    variables = {"A": "plain", "B": "with space", "C": "it's $HOME; rm -rf /", "D": ""}
    lines = export_lines(variables, ["ANTHROPIC_API_KEY", "OTHER"])
    parsed = {}
    for line in lines[:-1]:
        keyword, assignment = shlex.split(line)
        assert keyword == "export"
        name, _, value = assignment.partition("=")
        parsed[name] = value
    assert parsed == variables
    assert lines[-1] == "unset ANTHROPIC_API_KEY OTHER"
