"""The launcher's session loop in-process, where timings and the ledger can be inspected."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
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
from tests.ledger.records import approx_cost, summaries_by_session
from tests.waiting import eventually


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


@dataclass
class Session:
    """What a session needs: settings for the fake upstream, and a listening socket."""

    settings: ProxySettings
    sock: socket.socket
    port: int
    report: Path

    def launch(self, **plan: object) -> ClaudeLaunch:
        """The fake claude, pointed at this session's port, following `plan`."""
        base_url = base_url_for(LOOPBACK_HOST, self.port)
        env = build_claude_env(os.environ, self.settings, base_url)
        env["FAKE_CLAUDE_PLAN"] = json.dumps({"report": str(self.report), **plan})
        return ClaudeLaunch(sys.executable, [str(FAKE_CLAUDE)], env)


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[Session]:
    async with FakeUpstream() as upstream:
        sock = open_listen_socket()
        try:
            port = sock.getsockname()[1]
            yield Session(settings_for(upstream, tmp_path), sock, port, tmp_path / "report.json")
        finally:
            sock.close()


def child_pids() -> list[int]:
    tasks = Path("/proc/self/task")
    return [int(pid) for task in tasks.iterdir() for pid in (task / "children").read_text().split()]


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


async def wait_for_file_key(path: Path, key: str, timeout: float = 30.0) -> dict[str, object]:
    def reported() -> dict[str, object] | None:
        if path.exists() and (report := json.loads(path.read_text())).get(key):
            return report
        return None

    return await eventually(reported, timeout, what=f"{key!r} in {path}")


async def test_session_ledger_counts_what_claude_asked(session: Session) -> None:
    calls = [{"prompt": "a"}, {"prompt": "b", "stream": True}]
    result = await run_session(session.settings, session.launch(calls=calls), session.sock)

    assert result.exit_code == 0
    summary = result.ledger.final_summary()
    assert (summary.requests, summary.errors) == (2, 0)
    assert summary.output_tokens > 0
    assert summary.cost_usd > 0
    # Read back from the ledger's rows (written and flushed by the proxy's stop); the totals
    # in memory agree.
    stored = summaries_by_session(result.ledger.path)
    assert stored == {result.ledger.session_id: summary}
    assert summary == approx_cost(result.ledger.summary())
    assert await port_is_closed(session.port)


async def test_claude_that_ignores_sigterm_is_killed_after_the_grace_period(
    session: Session,
) -> None:
    launch = session.launch(wait_for_signal=True, ignore_signals=["SIGTERM"])
    running = asyncio.ensure_future(
        run_session(session.settings, launch, session.sock, terminate_grace_s=0.5)
    )
    await wait_for_file_key(session.report, "ready")
    loop = asyncio.get_running_loop()
    started = loop.time()
    os.kill(os.getpid(), signal.SIGTERM)  # as if cc-proxy itself got SIGTERM
    result = await asyncio.wait_for(running, 10)
    waited = loop.time() - started

    assert result.exit_code == 128 + signal.SIGKILL
    assert 0.4 < waited < 5


async def test_signal_handlers_are_removed_after_the_session(session: Session) -> None:
    await run_session(session.settings, session.launch(), session.sock)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


async def test_a_missing_executable_raises_a_user_error_and_leaves_no_handlers(
    session: Session, tmp_path: Path
) -> None:
    launch = ClaudeLaunch(str(tmp_path / "missing"), [], dict(os.environ))
    with pytest.raises(UserError, match="cannot start claude"):
        await run_session(session.settings, launch, session.sock)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


async def test_when_the_proxy_cannot_serve_claude_is_stopped_and_the_user_told(
    session: Session,
) -> None:
    session.sock.close()  # the proxy will find nothing to serve on
    launch = session.launch(wait_for_signal=True, exit_on_signal=0)
    with pytest.raises(UserError, match="the proxy failed to start"):
        await run_session(session.settings, launch, session.sock)
    # Claude was stopped and reaped: no child of ours runs the fake any more.
    assert not [pid for pid in child_pids() if FAKE_CLAUDE.name in command_line(pid)]
