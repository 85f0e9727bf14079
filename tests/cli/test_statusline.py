"""`cc-proxy statusline` from Claude Code's recorded JSON and a known ledger, and
`cc-proxy run --statusline`: claude's `--settings`, with and without a statusLine of the user's."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import platformdirs
import pytest

from cc_nemo.cli import statusline
from cc_nemo.cli.statusline_setting import statusline_command, with_statusline
from cc_nemo.errors import UserError
from cc_nemo.ledger import schema
from cc_nemo.proxy import routing
from cc_nemo.settings.config import load_config
from tests.cli.conftest import run_cli
from tests.fake_upstream import FakeUpstream
from tests.launcher.harness import install_fake_claude, start_run, upstream_env
from tests.ledger.records import make_record

SESSION = "81418ae3-6dde-4c3a-aeed-133cae7cac0a"
# What Claude Code 2.1.332 gave its status line command under `cc-proxy run nemotron
# --statusline` after the second answer (paths shortened).
RECORDED: dict[str, Any] = {
    "session_id": SESSION,
    "transcript_path": f"/home/me/.claude/projects/-home-me-work/{SESSION}.jsonl",
    "cwd": "/home/me/work",
    "prompt_id": "3283bc36-d20d-4307-9f41-58eb3a73b8ac",
    "effort": {"level": "high"},
    "model": {"id": "nemotron", "display_name": "nemotron"},
    "workspace": {"current_dir": "/home/me/work", "project_dir": "/home/me/work", "added_dirs": []},
    "version": "2.1.332",
    "output_style": {"name": "default"},
    "cost": {
        "total_cost_usd": 0.00039999999999999996,
        "total_duration_ms": 2739,
        "total_api_duration_ms": 173,
        "total_lines_added": 0,
        "total_lines_removed": 0,
    },
    "context_window": {
        "total_input_tokens": 20,
        "total_output_tokens": 4,
        "context_window_size": 256000,
        "current_usage": {
            "input_tokens": 20,
            "output_tokens": 4,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
        "used_percentage": 0,
        "remaining_percentage": 100,
    },
    "exceeds_200k_tokens": False,
    "prompt_cache": {
        "warm": False,
        "caching_observed": False,
        "ttl": "5m",
        "expires_at": None,
        "requests": 2,
        "misses": 0,
        "expected_rebuilds": 0,
        "hit_ratio": 0,
        "cache_write_tokens": 0,
        "miss_recache_tokens": 0,
        "last_miss_at": None,
        "last_miss_cause": None,
        "miss_causes": {},
        "recache_tokens_if_cold": 20,
    },
    "fast_mode": False,
    "thinking": {"enabled": True},
}
# The same session later: 73k tokens in the context.
LATER = {
    **RECORDED,
    "context_window": {
        **RECORDED["context_window"],
        "current_usage": {
            "input_tokens": 1200,
            "output_tokens": 900,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 71800,
        },
        "used_percentage": 29,
    },
}
# Claude started by `cc-proxy run`, whose environment the status line command inherits.
UNDER_RUN = {"CLAUDE_CODE_MAX_CONTEXT_TOKENS": "256000"}
# Every one of these costs milliseconds a command run after every message does not have.
NOT_IMPORTED = ("typer", "click", "rich", "aiohttp", "dataclasses", "typing", "platformdirs")


def write_ledger(path: Path, *, now: float) -> Path:
    """This session: yesterday $0.25 on nemotron, today $1.10 answered by kimi; another
    session today $0.05. Today: $1.15."""
    midnight = statusline.local_midnight(now)
    records = [
        make_record(ts=midnight - 3600, claude_session=SESSION, request_id="a",
                    input_tokens=12_000, cache_read_tokens=30_000, output_tokens=1_500,
                    cost_usd=0.25),
        make_record(ts=midnight + 1, claude_session=SESSION, request_id="b",
                    answered_by="kimi", fallback_from="nemotron", input_tokens=8_000,
                    cache_read_tokens=0, output_tokens=900, cost_usd=1.10),
        make_record(ts=midnight + 2, claude_session="another", request_id="c",
                    cost_usd=0.05),
    ]  # fmt: skip
    connection = schema.connect(path)
    assert connection is not None
    connection.executemany(schema.INSERT_SQL, [record.row() for record in records])
    connection.commit()
    connection.close()
    return path


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return write_ledger(tmp_path / "usage.sqlite3", now=time.time())


def run_entry(
    stdin: bytes, env: Mapping[str, str], *extra: str, show_modules: bool = False
) -> subprocess.CompletedProcess[str]:
    """`cc-proxy statusline` as Claude Code runs it: a new process, through the console
    script's entry function, JSON on stdin."""
    code = "import sys; from cc_nemo.cli.entry import main; code = main()"
    if show_modules:
        code += "; import json; print(json.dumps(sorted(sys.modules)), file=sys.stderr)"
    code += "; sys.exit(code)"
    done = subprocess.run(
        [sys.executable, "-c", code, "statusline", *extra],
        input=stdin,
        capture_output=True,
        env={**os.environ, **env},
        check=False,
        timeout=60,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    )


def line_for(status: dict[str, Any], ledger: Path, env: Mapping[str, str] = UNDER_RUN) -> str:
    return statusline.render(status, {schema.ENV_LEDGER_PATH: str(ledger), **env}, time.time())


def test_the_line_from_recorded_json_and_the_ledger(ledger: Path) -> None:
    done = run_entry(json.dumps(LATER).encode(), {schema.ENV_LEDGER_PATH: str(ledger), **UNDER_RUN})
    assert done.returncode == 0
    assert done.stderr == ""
    # The latest request was answered by kimi; the session's cost and tokens are the ledger's
    # (20,000 input + 30,000 cache read + 2,400 output), not Claude Code's own estimate.
    assert done.stdout == (
        "nemotron → kimi │ session $1.35, 52.4k tokens │ context 73k of 256k (29%) │ today $1.15\n"
    )


def test_the_first_recorded_json_of_a_session(ledger: Path) -> None:
    assert line_for(RECORDED, ledger).endswith("│ context 20 of 256k (0%) │ today $1.15")
    before_any_answer = {
        **RECORDED,
        "session_id": "fresh",
        "context_window": {**RECORDED["context_window"], "current_usage": None},
    }
    assert line_for(before_any_answer, ledger) == (
        "nemotron │ no requests yet │ context 256k │ today $1.15"
    )


def test_the_status_line_imports_only_the_standard_library(ledger: Path) -> None:
    done = run_entry(
        json.dumps(LATER).encode(),
        {schema.ENV_LEDGER_PATH: str(ledger), **UNDER_RUN},
        show_modules=True,
    )
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stderr))
    assert "cc_nemo.cli.statusline" in modules  # the fast path ran
    assert sorted(modules & set(NOT_IMPORTED)) == []
    assert not [name for name in modules if name.startswith("cc_nemo.settings")]


def test_the_ledger_location_needs_no_platformdirs_on_linux(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    # A status line in a claude started from cc-proxy's data directory's own install.
    monkeypatch.delenv(schema.ENV_LEDGER_PATH, raising=False)
    done = run_entry(json.dumps(LATER).encode(), {**UNDER_RUN}, show_modules=True)
    assert done.returncode == 0
    if sys.platform == "linux":
        assert "platformdirs" not in json.loads(done.stderr)


@pytest.mark.parametrize(
    "stdin",
    [
        b"",
        b"not json at all",
        b"[1, 2, 3]",
        b"\xff\xfe\x00garbage",
        b'{"session_id": 7, "model": "nemotron", "context_window": "big"}',
        b'{"model": {"id": ["x"]}, "context_window": {"context_window_size": -5, '
        b'"current_usage": {"input_tokens": "many"}}}',
        b'{"context_window": {"context_window_size": 1e999}}',
        b"[" * 100_000 + b"]" * 100_000,  # deeper than json can parse
    ],
)
def test_any_input_gives_one_line_and_exit_0(ledger: Path, stdin: bytes) -> None:
    done = run_entry(stdin, {schema.ENV_LEDGER_PATH: str(ledger), **UNDER_RUN})
    assert done.returncode == 0
    assert done.stderr == ""
    assert done.stdout == "cc-proxy │ today $1.15\n"


def test_no_ledger_yet_still_gives_a_line_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "none" / "usage.sqlite3"
    done = run_entry(json.dumps(LATER).encode(), {schema.ENV_LEDGER_PATH: str(missing)})
    assert done.returncode == 0
    assert done.stdout.startswith("nemotron │ no requests yet │ context 73k of ")
    assert "today" not in done.stdout
    assert not missing.parent.exists()


def test_a_broken_ledger_still_gives_a_line(tmp_path: Path) -> None:
    broken = tmp_path / "usage.sqlite3"
    broken.write_bytes(b"not a database" * 200)
    done = run_entry(json.dumps(LATER).encode(), {schema.ENV_LEDGER_PATH: str(broken)})
    assert done.returncode == 0
    assert done.stdout.startswith("nemotron │")
    assert done.stderr == ""


def test_reading_leaves_the_ledger_unchanged(ledger: Path) -> None:
    before = ledger.read_bytes()
    assert run_entry(json.dumps(LATER).encode(), {schema.ENV_LEDGER_PATH: str(ledger)}).stdout
    assert ledger.read_bytes() == before


def test_a_discovered_model_id_shows_its_alias(ledger: Path) -> None:
    status = {**LATER, "session_id": "other", "model": {"id": "claude-cf-kimi"}}
    assert line_for(status, ledger).startswith("kimi │ no requests yet │")


def test_outside_run_the_window_is_the_catalogs(ledger: Path) -> None:
    # Claude Code assumes 1M tokens for a name it does not know; nemotron has 256k.
    assumed = {**LATER, "context_window": {**LATER["context_window"], "context_window_size": 1e6}}
    assert "context 73k of 256k (29%)" in line_for(assumed, ledger, env={})
    kimi = {**assumed, "model": {"id": "claude-cf-kimi"}}
    assert "context 73k of 262k (28%)" in line_for(kimi, ledger, env={})
    # Under run, the JSON's window is the one claude meters and compacts against.
    assert "context 73k of 1M (7%)" in line_for(assumed, ledger, env=UNDER_RUN)
    # Claude's own models and names no catalog knows keep the JSON's window.
    claude = {**LATER, "model": {"id": "claude-opus-4-5", "display_name": "Opus"}}
    assert "context 73k of 256k (29%)" in line_for(claude, ledger, env={})
    # Not through cc-proxy at all: nothing to wait for, and today's cc-proxy spend.
    anthropic = {**claude, "session_id": "on-anthropic"}
    assert line_for(anthropic, ledger, env={}) == ("Opus │ context 73k of 256k (29%) │ today $1.15")
    unknown = {**assumed, "model": {"id": "mystery"}}
    assert "context 73k of 1M (7%)" in line_for(unknown, ledger, env={})


def test_outside_run_a_config_model_has_its_own_window(ledger: Path, config_home: Path) -> None:
    config_home.mkdir(parents=True)
    (config_home / "config.toml").write_text(
        '[models.mine]\nmodel = "@cf/me/mine"\ncontext_window = 64000\n'
    )
    status = {**LATER, "model": {"id": "mine"}}
    line = line_for(status, ledger, env={})
    assert "context 73k of 64k (114%)" in line
    # Switched from nemotron: its fallback no longer names the session's model.
    assert line.startswith("mine │ session $1.35")


def test_typer_runs_the_same_line(ledger: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(schema.ENV_LEDGER_PATH, str(ledger))
    for name, value in UNDER_RUN.items():
        monkeypatch.setenv(name, value)
    result = run_cli("statusline", input=json.dumps(LATER))
    assert result.exit_code == 0
    assert result.stdout == line_for(LATER, ledger) + "\n"


def test_help_lists_statusline_and_usage() -> None:
    listed = run_cli("--help").stdout
    assert "statusline" in listed and "usage" in listed
    assert "statusLine setting" in run_cli("statusline", "--help").stdout


def test_the_mirrored_constants_agree() -> None:
    assert statusline.DISCOVERY_PREFIX == routing.DISCOVERY_PREFIX


@pytest.mark.parametrize("xdg", [None, "/srv/data", "relative/data", ""])
def test_the_ledger_location_is_the_ledgers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xdg: str | None
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    monkeypatch.delenv(schema.ENV_LEDGER_PATH, raising=False)
    if xdg is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", xdg)
    # The three-line Linux rule is platformdirs' answer.
    expected = Path(platformdirs.user_data_dir("cc-proxy", appauthor=False)) / "usage.sqlite3"
    assert schema.ledger_path() == expected
    monkeypatch.setenv(schema.ENV_LEDGER_PATH, "/elsewhere/usage.sqlite3")
    assert schema.ledger_path() == Path("/elsewhere/usage.sqlite3")


@pytest.mark.parametrize(
    ("count", "shown"),
    [(None, "?"), (0, "0"), (999, "999"), (1000, "1k"), (73_000, "73k"), (262_144, "262k"),
     (1_234_567, "1.23M"), (52_400, "52.4k"), (2_500_000_000, "2.5B")],
)  # fmt: skip
def test_compact_counts(count: int | None, shown: str) -> None:
    assert statusline.compact(count) == shown


def test_dollars() -> None:
    shown = [statusline.format_usd(x) for x in (0, 0.00004, 0.0049, 0.01, 1234.5)]
    assert shown == ["$0.00", "<$0.0001", "$0.0049", "$0.01", "$1,234.50"]


# `cc-proxy run --statusline`: claude's arguments.

COMMAND = "/opt/cc/bin/cc-proxy statusline"


def settings_arg(args: list[str]) -> dict[str, Any]:
    return json.loads(args[args.index("--settings") + 1])


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    home, cwd = tmp_path / "user-home", tmp_path / "project"
    home.mkdir()
    cwd.mkdir()
    return home, cwd


def test_without_a_statusline_of_the_users_ours_goes_in_settings(dirs: tuple[Path, Path]) -> None:
    home, cwd = dirs
    # Settings without a statusLine (and one that claude cannot read either) change nothing.
    (home / ".claude").mkdir()
    (home / ".claude" / "settings.json").write_text('{"model": "opus", "statusLine": null}')
    (cwd / ".claude").mkdir()
    (cwd / ".claude" / "settings.json").write_text("{not json")
    result = with_statusline(["-p", "hi"], COMMAND, env={}, home=home, cwd=cwd)
    assert result.kept_reason is None
    assert result.claude_args == [
        "--settings",
        json.dumps({"statusLine": {"type": "command", "command": COMMAND}}),
        "-p",
        "hi",
    ]


@pytest.mark.parametrize(
    "where",
    ["home", "config_dir", "project", "project_local"],
)
def test_a_statusline_of_the_users_is_kept(
    dirs: tuple[Path, Path], tmp_path: Path, where: str
) -> None:
    home, cwd = dirs
    config_dir = tmp_path / "claude-config"
    path = {
        "home": home / ".claude" / "settings.json",
        "config_dir": config_dir / "settings.json",
        "project": cwd / ".claude" / "settings.json",
        "project_local": cwd / ".claude" / "settings.local.json",
    }[where]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"statusLine": {"type": "command", "command": "mine.sh"}}))
    env = {"CLAUDE_CONFIG_DIR": str(config_dir)}
    result = with_statusline(["-p", "hi"], COMMAND, env=env, home=home, cwd=cwd)
    assert result.claude_args == ["-p", "hi"]
    assert result.kept_reason == f"{path} has a statusLine"


def test_the_users_own_settings_json_is_merged_or_kept(dirs: tuple[Path, Path]) -> None:
    home, cwd = dirs
    theirs = json.dumps({"model": "x", "env": {"A": "1"}})
    result = with_statusline(["--settings", theirs, "-c"], COMMAND, env={}, home=home, cwd=cwd)
    assert result.kept_reason is None
    assert result.claude_args[0] == "--settings"
    assert settings_arg(result.claude_args) == {
        "model": "x",
        "env": {"A": "1"},
        "statusLine": {"type": "command", "command": COMMAND},
    }
    assert result.claude_args[2:] == ["-c"]
    with_theirs = json.dumps({"statusLine": {"type": "command", "command": "mine.sh"}})
    kept = with_statusline([f"--settings={with_theirs}"], COMMAND, env={}, home=home, cwd=cwd)
    assert kept.claude_args == [f"--settings={with_theirs}"]
    assert kept.kept_reason == "the --settings given to claude has a statusLine"


def test_the_users_settings_file_is_merged_or_kept(dirs: tuple[Path, Path]) -> None:
    home, cwd = dirs
    (cwd / "extra.json").write_text('{"model": "x"}')
    merged = with_statusline(["--settings=extra.json"], COMMAND, env={}, home=home, cwd=cwd)
    value = merged.claude_args[0].removeprefix("--settings=")
    assert json.loads(value)["statusLine"]["command"] == COMMAND
    assert json.loads(value)["model"] == "x"
    (cwd / "extra.json").write_text('{"statusLine": {"type": "command", "command": "m"}}')
    kept = with_statusline(["--settings", "extra.json"], COMMAND, env={}, home=home, cwd=cwd)
    assert kept.claude_args == ["--settings", "extra.json"]
    missing = with_statusline(["--settings", "nope.json"], COMMAND, env={}, home=home, cwd=cwd)
    assert missing.claude_args == ["--settings", "nope.json"]
    assert missing.kept_reason == "cannot read the --settings file nope.json"


def test_a_settings_word_after_a_bare_double_dash_is_a_prompt(dirs: tuple[Path, Path]) -> None:
    home, cwd = dirs
    result = with_statusline(["--", "--settings", "{}"], COMMAND, env={}, home=home, cwd=cwd)
    assert result.claude_args[0] == "--settings"
    assert result.claude_args[2:] == ["--", "--settings", "{}"]


def test_the_command_is_the_console_script_else_this_python(tmp_path: Path) -> None:
    script = tmp_path / "my bin" / "cc-proxy"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    assert statusline_command(str(script), "/usr/bin/python3") == (
        f"{shlex.quote(str(script))} statusline"
    )
    assert statusline_command("/x/cc_nemo/__main__.py", "/v env/bin/python") == (
        "'/v env/bin/python' -m cc_nemo.cli.statusline"
    )


def test_statusline_in_config_is_true_or_false(config_home: Path) -> None:
    config_home.mkdir(parents=True)
    (config_home / "config.toml").write_text("statusline = true\n")
    assert load_config().statusline is True
    (config_home / "config.toml").write_text('statusline = "yes"\n')
    with pytest.raises(UserError, match="statusline must be true or false"):
        load_config()


@pytest.fixture
def run_env(tmp_path: Path, upstream: FakeUpstream, isolated_user_dirs: Path) -> dict[str, str]:
    """cc-proxy run's environment: the fake upstream, the fake claude on PATH, a HOME of
    its own (claude's user settings), a ledger of its own."""
    fake = install_fake_claude(tmp_path / "bin")
    home = tmp_path / "user-home"
    home.mkdir()
    return {
        **upstream_env(upstream.url),
        "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        schema.ENV_LEDGER_PATH: str(write_ledger(tmp_path / "usage.sqlite3", now=time.time())),
    }


async def test_run_statusline_gives_claude_a_command_that_prints_the_line(
    tmp_path: Path, run_env: dict[str, str]
) -> None:
    run = await start_run(tmp_path, ["-q", "--statusline", "--", "-p", "hi"], env=run_env)
    done = await run.finish()
    assert done.returncode == 0, done.stderr
    argv = run.report()["argv"]
    assert argv[2:] == ["-p", "hi"]
    command = settings_arg(argv)["statusLine"]["command"]
    # The command as claude runs it: through a shell, claude's environment, the JSON on stdin.
    shown = subprocess.run(
        command,
        shell=True,
        input=json.dumps(LATER).encode(),
        capture_output=True,
        env={**os.environ, **run_env, **UNDER_RUN},
        check=True,
        timeout=60,
    )
    assert shown.stdout.decode().startswith("nemotron → kimi │ session $1.35, 52.4k tokens │")


async def test_run_takes_statusline_from_config_and_the_flag_wins(
    tmp_path: Path, run_env: dict[str, str], config_home: Path
) -> None:
    config_home.mkdir(parents=True)
    (config_home / "config.toml").write_text("statusline = true\n")
    run = await start_run(tmp_path, ["-q"], env=run_env)
    assert (await run.finish()).returncode == 0
    assert "statusLine" in settings_arg(run.report()["argv"])
    run = await start_run(tmp_path, ["-q", "--no-statusline"], env=run_env)
    assert (await run.finish()).returncode == 0
    assert "--settings" not in run.report()["argv"]


async def test_run_statusline_keeps_the_users_own_and_says_so(
    tmp_path: Path, run_env: dict[str, str]
) -> None:
    settings = Path(run_env["HOME"]) / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"statusLine": {"type": "command", "command": "mine.sh"}}))
    run = await start_run(tmp_path, ["-q", "--statusline"], env=run_env)
    done = await run.finish()
    assert done.returncode == 0
    assert run.report()["argv"] == []
    assert f"keeping your own status line: {settings} has a statusLine" in done.stderr


def test_after_a_model_switch_under_run_the_window_is_the_new_models() -> None:
    from cc_nemo.launch.claude_env import build_claude_env
    from tests.launcher.test_claude_env import settings_for

    env = build_claude_env({}, settings_for("nemotron"), "http://127.0.0.1:1")
    # Claude Code meters every model against CLAUDE_CODE_MAX_CONTEXT_TOKENS (nemotron's 256k).
    switched = {**LATER, "model": {"id": "claude-cf-gpt-oss"}}
    line = statusline.render(switched, env, time.time())
    assert "context 73k of 128k (57%)" in line
    # A name that is not one of ours keeps the window Claude Code reports.
    foreign = {**LATER, "model": {"id": "claude-opus-4-5", "display_name": "Opus"}}
    assert "context 73k of 256k (29%)" in statusline.render(foreign, env, time.time())
