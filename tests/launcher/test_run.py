"""`cc-proxy run` as a user runs it: a real subprocess, a fake claude, the fake upstream."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.fake_upstream import FakeUpstream
from tests.launcher.harness import (
    GATEWAY_TOKEN,
    install_fake_claude,
    port_is_closed,
    proxy_log_text,
    run_command,
    start_run,
    upstream_env,
)
from tests.ledger.records import summaries_by_session

EXIT_MARKER = "<<fake claude exits>>"


@pytest.fixture
def fake_claude(tmp_path: Path) -> Path:
    return install_fake_claude(tmp_path / "bin")


@pytest.fixture
def env(upstream: FakeUpstream, fake_claude: Path) -> dict[str, str]:
    """cc-proxy's environment: the fake upstream, the fake claude first on PATH, and the
    variables cc-proxy must take away from or add to claude's environment."""
    return {
        **upstream_env(upstream.url),
        "PATH": f"{fake_claude.parent}{os.pathsep}{os.environ['PATH']}",
        "ANTHROPIC_API_KEY": "sk-ant-user-key-that-must-not-reach-claude",
        "NO_PROXY": "corp.example",
        "HTTPS_PROXY": "http://127.0.0.1:9",  # would break claude's calls without NO_PROXY
    }


async def test_claude_reaches_the_proxy_with_the_sdk_streaming_and_not(
    tmp_path: Path, upstream: FakeUpstream, env: dict[str, str]
) -> None:
    plan = {
        "calls": [{"prompt": "first question"}, {"prompt": "second question", "stream": True}],
        "stderr_marker": EXIT_MARKER,
    }
    run = await start_run(tmp_path, ["nemotron"], plan=plan, env=env)
    done = await run.finish()
    report = run.report()

    assert done.returncode == 0, done.stderr
    assert [call["ok"] for call in report["calls"]] == [True, True], report["calls"]
    assert report["calls"][0]["text"] == "echo: first question"
    assert report["calls"][1]["text"] == "echo: second question"
    assert report["calls"][1]["output_tokens"] > 0
    bodies = [r.body for r in upstream.requests]
    assert [b.get("stream", False) for b in bodies] == [False, True]
    assert {b["model"] for b in bodies} == {"workers-ai/@cf/nvidia/nemotron-3-120b-a12b"}
    assert all(
        r.headers["cf-aig-authorization"] == f"Bearer {GATEWAY_TOKEN}" for r in upstream.requests
    )
    # The terminal saw nothing from cc-proxy while claude ran: only the summary, after exit.
    assert done.stdout == ""
    assert done.stderr.startswith(EXIT_MARKER), done.stderr
    summary = done.stderr.removeprefix(EXIT_MARKER)
    assert summary.startswith("cc-proxy: 2 requests;"), summary
    assert "estimated cost $" in summary
    # The summary is the ledger's rows for this proxy session.
    [stored] = summaries_by_session(Path(os.environ["CC_PROXY_LEDGER"])).values()
    assert summary == stored.render() + "\n"
    assert (stored.requests, stored.errors) == (2, 0)


async def test_an_unwritable_ledger_still_gives_the_summary_and_one_warning(
    tmp_path: Path, env: dict[str, str], isolated_user_dirs: Path
) -> None:
    (tmp_path / "blocker").write_text("a file where the ledger's directory should be")
    plan = {"calls": [{"prompt": "one"}, {"prompt": "two", "stream": True}]}
    env = {**env, "CC_PROXY_LEDGER": str(tmp_path / "blocker" / "usage.sqlite3")}
    run = await start_run(tmp_path, ["nemotron"], plan=plan, env=env)
    done = await run.finish()

    assert done.returncode == 0, done.stderr
    assert [call["ok"] for call in run.report()["calls"]] == [True, True]
    assert done.stderr.startswith("cc-proxy: 2 requests; "), done.stderr
    assert "Traceback" not in done.stderr
    log = proxy_log_text(isolated_user_dirs / "state")
    assert log.count("WARNING cc_nemo.ledger") == 1, log


async def test_claude_environment_points_at_the_proxy_and_drops_the_api_key(
    tmp_path: Path, env: dict[str, str]
) -> None:
    run = await start_run(tmp_path, ["gpt-oss", "--quiet"], env=env)
    done = await run.finish()
    claude_env = run.report()["env"]

    assert done.returncode == 0, done.stderr
    base_url = urlsplit(claude_env["ANTHROPIC_BASE_URL"])
    assert (base_url.scheme, base_url.hostname, base_url.path) == ("http", "127.0.0.1", "")
    assert base_url.port and base_url.port > 0
    assert len(claude_env["ANTHROPIC_AUTH_TOKEN"]) >= 32
    assert claude_env["ANTHROPIC_AUTH_TOKEN"] != GATEWAY_TOKEN
    assert "ANTHROPIC_API_KEY" not in claude_env
    assert claude_env["ANTHROPIC_MODEL"] == "gpt-oss"
    assert claude_env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "128000"
    assert claude_env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "32000"
    assert claude_env["NO_PROXY"] == "corp.example,127.0.0.1,localhost"
    assert claude_env["HTTPS_PROXY"] == env["HTTPS_PROXY"]  # the user's own variables stay


async def test_a_fresh_session_token_each_run(tmp_path: Path, env: dict[str, str]) -> None:
    tokens = []
    for attempt in range(2):
        (tmp_path / str(attempt)).mkdir()
        run = await start_run(tmp_path / str(attempt), ["--quiet"], env=env)
        await run.finish()
        tokens.append(run.report()["env"]["ANTHROPIC_AUTH_TOKEN"])
    assert tokens[0] != tokens[1]


@pytest.mark.parametrize("code", [0, 1, 3, 42, 255])
async def test_claude_exit_code_is_cc_proxy_exit_code(
    tmp_path: Path, env: dict[str, str], code: int
) -> None:
    run = await start_run(tmp_path, ["--quiet"], plan={"exit_code": code}, env=env)
    done = await run.finish()
    assert done.returncode == code
    assert (done.stdout, done.stderr) == ("", "")  # --quiet: nothing at all


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGUSR1, signal.SIGTERM])
async def test_claude_killed_by_a_signal_exits_128_plus_signal(
    tmp_path: Path, env: dict[str, str], sig: signal.Signals
) -> None:
    run = await start_run(tmp_path, ["--quiet"], plan={"kill_self": sig.name}, env=env)
    done = await run.finish()
    assert done.returncode == 128 + sig


SIGINT_LEFT_TO_CLAUDE = "SIGINT received; left to claude"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
async def test_sigterm_and_sighup_are_forwarded_and_sigint_is_left_to_claude(
    tmp_path: Path, env: dict[str, str], sig: signal.Signals, isolated_user_dirs: Path
) -> None:
    plan = {"wait_for_signal": True, "exit_on_signal": 77}
    run = await start_run(tmp_path, ["--quiet"], plan=plan, env=env)
    await run.wait_for_report("ready")

    # Ctrl-C reaches the whole foreground group; cc-proxy must neither die nor pass it on.
    # Its handler logs that it took SIGINT: past that line a forwarded SIGINT would already be
    # on its way to claude, which records every signal it gets (checked at the end).
    run.process.send_signal(signal.SIGINT)
    await run.wait_for_log(isolated_user_dirs / "state", SIGINT_LEFT_TO_CLAUDE)
    assert run.process.returncode is None
    assert run.report()["signals"] == []

    run.process.send_signal(sig)
    done = await run.finish()
    assert done.returncode == 77  # claude decided how to exit, and that code came through
    assert run.report()["signals"] == [sig.name]
    assert (done.stdout, done.stderr) == ("", "")


async def test_claude_inherits_a_default_sigint_disposition(
    tmp_path: Path, env: dict[str, str]
) -> None:
    run = await start_run(tmp_path, ["--quiet"], env=env)
    await run.finish()
    assert run.report()["sigint_ignored_at_start"] is False


async def test_session_token_is_never_in_any_argv(tmp_path: Path, env: dict[str, str]) -> None:
    plan = {"wait_for_signal": True}
    run = await start_run(tmp_path, ["--quiet", "--", "-p", "hi"], plan=plan, env=env)
    report = await run.wait_for_report("ready")
    token = report["env"]["ANTHROPIC_AUTH_TOKEN"]
    claude_cmdline = Path(f"/proc/{report['pid']}/cmdline").read_bytes()
    proxy_cmdline = Path(f"/proc/{run.process.pid}/cmdline").read_bytes()
    run.process.send_signal(signal.SIGTERM)
    await run.finish()

    assert report["ppid"] == run.process.pid  # claude is cc-proxy's direct child
    assert token.encode() not in claude_cmdline
    assert token.encode() not in proxy_cmdline
    assert GATEWAY_TOKEN.encode() not in claude_cmdline + proxy_cmdline
    assert claude_cmdline.split(b"\0")[-3:-1] == [b"-p", b"hi"]


@pytest.mark.parametrize(
    ("run_args", "claude_args"),
    [
        (["--", "-p", "a multi word prompt"], ["-p", "a multi word prompt"]),
        (
            ["nemotron", "--", "--settings", '{"a": [1, "two"], "b": "c d"}', "--model", "x"],
            ["--settings", '{"a": [1, "two"], "b": "c d"}', "--model", "x"],
        ),
        # Words after `--` that look like cc-proxy's own options still belong to claude.
        (
            ["--quiet", "--", "--quiet", "--claude", "nope", "--small-model", "y", "--help"],
            ["--quiet", "--claude", "nope", "--small-model", "y", "--help"],
        ),
        (["--", "-p", "", "--", "$HOME; rm -rf /", "*"], ["-p", "", "--", "$HOME; rm -rf /", "*"]),
        (["nemotron", "-p", "hi", "--", "--verbose"], ["-p", "hi", "--verbose"]),
        # Without `--` and without a model, claude's options still reach claude, in order.
        (["-p", "fix it", "--output-format", "json"], ["-p", "fix it", "--output-format", "json"]),
        (["--model", "x", "-q", "--", "y"], ["--model", "x", "y"]),
        (["--"], []),
        ([], []),
    ],
)
async def test_arguments_after_double_dash_reach_claude_verbatim(
    tmp_path: Path, env: dict[str, str], run_args: list[str], claude_args: list[str]
) -> None:
    run = await start_run(tmp_path, ["-q", *run_args], env=env)
    done = await run.finish()
    assert done.returncode == 0, done.stderr
    assert run.report()["argv"] == claude_args


async def test_the_port_is_closed_after_claude_exits(tmp_path: Path, env: dict[str, str]) -> None:
    run = await start_run(tmp_path, ["--quiet"], plan={"exit_code": 5}, env=env)
    done = await run.finish()
    port = urlsplit(run.report()["env"]["ANTHROPIC_BASE_URL"]).port
    assert done.returncode == 5
    assert port is not None
    assert await port_is_closed(port)


async def test_claude_found_through_the_claude_option_and_env_var(
    tmp_path: Path, env: dict[str, str], fake_claude: Path
) -> None:
    renamed = fake_claude.with_name("my-claude")
    fake_claude.rename(renamed)
    no_claude_env = {**env, "PATH": str(empty_dir(tmp_path))}

    run = await start_run(tmp_path, ["-q", "--claude", str(renamed)], env=no_claude_env)
    assert (await run.finish()).returncode == 0, run

    env_var = {**no_claude_env, "CC_PROXY_CLAUDE": str(renamed)}
    run = await start_run(tmp_path, ["-q", "--", "-p", "x"], env=env_var)
    assert (await run.finish()).returncode == 0
    assert run.report()["argv"] == ["-p", "x"]


def empty_dir(tmp_path: Path) -> Path:
    """A PATH with no claude on it, even on a machine with claude installed system-wide."""
    path = tmp_path / "empty-path"
    path.mkdir(exist_ok=True)
    return path


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


async def test_missing_claude_is_one_line_saying_how_to_install(
    tmp_path: Path, env: dict[str, str]
) -> None:
    done = await run_command(["run", "nemotron"], env={**env, "PATH": str(empty_dir(tmp_path))})
    assert done.returncode != 0
    line = _one_line_error(done.stderr)
    assert "npm install -g @anthropic-ai/claude-code" in line


async def test_missing_credentials_is_one_line_naming_the_login_command(
    fake_claude: Path,
) -> None:
    path = f"{fake_claude.parent}{os.pathsep}{os.environ['PATH']}"
    done = await run_command(["run", "nemotron"], env={"PATH": path})
    assert done.returncode != 0
    assert "cc-proxy login" in _one_line_error(done.stderr)


async def test_a_prompt_in_the_model_place_gets_a_double_dash_hint(env: dict[str, str]) -> None:
    done = await run_command(["run", "fix the bug", "-p"], env=env)
    assert done.returncode != 0
    assert "go after `--`" in _one_line_error(done.stderr)


async def test_unknown_model_is_one_line_listing_the_aliases(env: dict[str, str]) -> None:
    done = await run_command(["run", "no-such-model"], env=env)
    assert done.returncode != 0
    line = _one_line_error(done.stderr)
    assert "no-such-model" in line
    assert "nemotron" in line
    assert "gpt-oss" in line


SPAWN_PROBE = """
import json, sys, time
seen = {}
def hook(event, args):
    if event == "subprocess.Popen" and "spawn" not in seen:
        seen["spawn"] = sorted(m for m in sys.modules if m.split(".")[0] in %(heavy)r)
sys.addaudithook(hook)
sys.argv = ["cc-proxy", "run", "-q"]
from cc_nemo.cli.main import main
try:
    main()
finally:
    with open(%(out)r, "w") as f:
        json.dump(seen, f)
"""


async def test_nothing_heavy_is_imported_before_claude_is_spawned(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Claude starts before aiohttp (or rich, keyring) is imported: start-up speed by design."""
    out = tmp_path / "modules-at-spawn.json"
    # pydantic: typer 0.29 coerces options through it (+110 ms, +9 MB); pyproject pins below.
    heavy = ["aiohttp", "rich", "keyring", "yarl", "multidict", "anthropic", "pydantic"]
    code = SPAWN_PROBE % {"heavy": heavy, "out": str(out)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        env={**os.environ, **env, "FAKE_CLAUDE_PLAN": json.dumps({"report": str(tmp_path / "r")})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert json.loads(out.read_text()) == {"spawn": []}


async def test_ctrl_c_to_the_whole_group_reaches_claude_and_cc_proxy_stays(
    tmp_path: Path, env: dict[str, str], isolated_user_dirs: Path
) -> None:
    """What a terminal does on Ctrl-C: SIGINT to every process in the foreground group."""
    plan = {"wait_for_signal": True, "exit_on_signal": 0}
    run = await start_run(tmp_path, ["--quiet"], plan=plan, env=env, new_session=True)
    await run.wait_for_report("ready")
    os.killpg(run.process.pid, signal.SIGINT)
    # Both took it: claude recorded it, and cc-proxy's handler ran (and cc-proxy is still here).
    await run.wait_for_report("signals", lambda signals: "SIGINT" in signals)
    await run.wait_for_log(isolated_user_dirs / "state", SIGINT_LEFT_TO_CLAUDE)
    assert run.process.returncode is None  # cc-proxy let claude decide
    run.process.send_signal(signal.SIGTERM)
    done = await run.finish()
    assert done.returncode == 0
    assert run.report()["signals"] == ["SIGINT", "SIGTERM"]


async def test_log_file_holds_no_secrets(
    tmp_path: Path, env: dict[str, str], isolated_user_dirs: Path
) -> None:
    run = await start_run(tmp_path, ["-q"], plan={"calls": [{"prompt": "hi"}]}, env=env)
    assert (await run.finish()).returncode == 0
    session_token = run.report()["env"]["ANTHROPIC_AUTH_TOKEN"]
    logs = list((isolated_user_dirs / "state").rglob("*.log"))
    assert logs, "cc-proxy wrote no log file"
    text = "".join(log.read_text() for log in logs)
    assert "claude started" in text
    assert session_token not in text
    assert GATEWAY_TOKEN not in text


async def test_unwritable_log_directory_is_one_clear_line(
    tmp_path: Path, env: dict[str, str]
) -> None:
    not_a_dir = tmp_path / "state-is-a-file"
    not_a_dir.write_text("")
    done = await run_command(["run", "-q"], env={**env, "XDG_STATE_HOME": str(not_a_dir)})
    assert done.returncode != 0
    assert "cannot write the log file" in _one_line_error(done.stderr)


async def test_claude_that_cannot_be_executed_is_one_clear_line(
    tmp_path: Path, env: dict[str, str]
) -> None:
    broken = tmp_path / "broken-claude"
    broken.write_bytes(b"\x7fELF not really")
    broken.chmod(0o755)
    done = await run_command(["run", "-q", "--claude", str(broken)], env=env)
    assert done.returncode != 0
    assert "cannot start claude" in _one_line_error(done.stderr)
