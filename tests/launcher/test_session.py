"""The launcher's session loop in-process, where timings and the ledger can be inspected."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from cc_nemo.errors import UserError
from cc_nemo.launch.claude_env import build_claude_env
from cc_nemo.launch.launcher import (
    LOOPBACK_HOST,
    ClaudeLaunch,
    base_url_for,
    open_listen_socket,
    run_session,
)
from cc_nemo.settings.catalog import Catalog
from cc_nemo.settings.runtime import ProviderSettings, ProxySettings
from tests.fake_upstream import FakeUpstream
from tests.launcher.harness import FAKE_CLAUDE, GATEWAY_TOKEN, port_is_closed


def settings_for(upstream: FakeUpstream, tmp_path: Path) -> ProxySettings:
    catalog = Catalog.build()
    spec = catalog.resolve("nemotron")
    return ProxySettings(
        provider=ProviderSettings(
            "cloudflare",
            f"{upstream.url}/v1/acct/gw",
            {"cf-aig-authorization": f"Bearer {GATEWAY_TOKEN}"},
        ),
        catalog=catalog,
        main_model=spec,
        small_model=spec,
        session_token="in-process-session-token-0123456789",
        log_file=tmp_path / "proxy.log",
    )


def fake_launch(settings: ProxySettings, port: int, plan: dict[str, object]) -> ClaudeLaunch:
    env = build_claude_env(os.environ, settings, base_url_for(LOOPBACK_HOST, port))
    env["FAKE_CLAUDE_PLAN"] = json.dumps(plan)
    return ClaudeLaunch(sys.executable, [str(FAKE_CLAUDE)], env)


def child_pids() -> list[int]:
    tasks = Path("/proc/self/task")
    return [int(pid) for task in tasks.iterdir() for pid in (task / "children").read_text().split()]


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


async def wait_for_file_key(path: Path, key: str, timeout: float = 30.0) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if path.exists() and (report := json.loads(path.read_text())).get(key):
            return report
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {key!r} in {path}")


async def test_session_ledger_counts_what_claude_asked(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        settings = settings_for(upstream, tmp_path)
        sock = open_listen_socket()
        port = sock.getsockname()[1]
        report = tmp_path / "report.json"
        plan = {"report": str(report), "calls": [{"prompt": "a"}, {"prompt": "b", "stream": True}]}
        try:
            result = await run_session(settings, fake_launch(settings, port, plan), sock)
        finally:
            sock.close()

    assert result.exit_code == 0
    summary = result.ledger.summary()
    assert (summary.requests, summary.errors) == (2, 0)
    assert summary.output_tokens > 0
    assert summary.cost_usd > 0
    assert await port_is_closed(port)


async def test_claude_that_ignores_sigterm_is_killed_after_the_grace_period(
    tmp_path: Path,
) -> None:
    async with FakeUpstream() as upstream:
        settings = settings_for(upstream, tmp_path)
        sock = open_listen_socket()
        port = sock.getsockname()[1]
        report = tmp_path / "report.json"
        plan = {"report": str(report), "wait_for_signal": True, "ignore_signals": ["SIGTERM"]}
        session = asyncio.ensure_future(
            run_session(settings, fake_launch(settings, port, plan), sock, terminate_grace_s=0.5)
        )
        try:
            await wait_for_file_key(report, "ready")
            loop = asyncio.get_running_loop()
            started = loop.time()
            os.kill(os.getpid(), signal.SIGTERM)  # as if cc-proxy itself got SIGTERM
            result = await asyncio.wait_for(session, 10)
            waited = loop.time() - started
        finally:
            sock.close()

    assert result.exit_code == 128 + signal.SIGKILL
    assert 0.4 < waited < 5


async def test_signal_handlers_are_removed_after_the_session(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        settings = settings_for(upstream, tmp_path)
        sock = open_listen_socket()
        plan = {"report": str(tmp_path / "report.json")}
        try:
            await run_session(settings, fake_launch(settings, 0, plan), sock)
        finally:
            sock.close()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


async def test_a_missing_executable_raises_a_user_error_and_leaves_no_handlers(
    tmp_path: Path,
) -> None:
    async with FakeUpstream() as upstream:
        settings = settings_for(upstream, tmp_path)
        sock = open_listen_socket()
        launch = ClaudeLaunch(str(tmp_path / "missing"), [], dict(os.environ))
        try:
            with pytest.raises(UserError, match="cannot start claude"):
                await run_session(settings, launch, sock)
        finally:
            sock.close()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


async def test_when_the_proxy_cannot_serve_claude_is_stopped_and_the_user_told(
    tmp_path: Path,
) -> None:
    async with FakeUpstream() as upstream:
        settings = settings_for(upstream, tmp_path)
        sock = open_listen_socket()
        port = sock.getsockname()[1]
        sock.close()  # the proxy will find nothing to serve on
        report = tmp_path / "report.json"
        plan = {"report": str(report), "wait_for_signal": True, "exit_on_signal": 0}
        with pytest.raises(UserError, match="the proxy failed to start"):
            await run_session(settings, fake_launch(settings, port, plan), sock)
    # Claude was stopped and reaped: no child of ours runs the fake any more.
    assert not [pid for pid in child_pids() if FAKE_CLAUDE.name in command_line(pid)]
