"""Run the real `cc-proxy` command in a subprocess with the fake claude, against the fake upstream."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.waiting import eventually

FAKE_CLAUDE = Path(__file__).with_name("fake_claude.py")
GATEWAY_TOKEN = "gateway-secret-token-0123456789"
PROCESS_TIMEOUT_S = 60.0


def install_fake_claude(bin_dir: Path) -> Path:
    """An executable named `claude` that execs the fake (same pid, so /proc checks see it)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "claude"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CLAUDE}" "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def upstream_env(upstream_url: str) -> dict[str, str]:
    """Point cc-proxy's provider at the fake upstream (as a Cloudflare AI Gateway)."""
    return {
        "CC_PROXY_PROVIDER": "cloudflare",
        "CF_AI_GATEWAY_URL": f"{upstream_url}/v1/acct/gw",
        "CF_AIG_TOKEN": GATEWAY_TOKEN,
    }


def cc_proxy_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "cc_nemo", *args]


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class FakeClaudeRun:
    """A cc-proxy process whose claude is the fake, with a handle on the fake's report."""

    process: asyncio.subprocess.Process
    report_path: Path

    def report(self) -> dict[str, Any]:
        return json.loads(self.report_path.read_text())

    async def wait_for_report(
        self, key: str, check: Callable[[Any], bool] = bool, timeout: float = 30.0
    ) -> dict[str, Any]:
        """The fake's report once `check(report[key])` holds (by default: once it is truthy)."""

        def reported() -> dict[str, Any] | None:
            self.assert_running(f"reporting {key!r}")
            if self.report_path.exists() and check((report := self.report()).get(key)):
                return report
            return None

        return await eventually(reported, timeout, what=f"the fake claude to report {key!r}")

    async def wait_for_log(self, state_home: Path, line: str, timeout: float = 10.0) -> str:
        """cc-proxy's log text once it holds `line` (a background thread writes the log)."""

        def logged() -> str | None:
            self.assert_running(f"logging {line!r}")
            text = proxy_log_text(state_home)
            return text if line in text else None

        return await eventually(logged, timeout, what=f"{line!r} in cc-proxy's log")

    def assert_running(self, waiting_for: str) -> None:
        if self.process.returncode is not None:
            raise AssertionError(
                f"cc-proxy exited ({self.process.returncode}) before {waiting_for}"
            )

    async def finish(self, timeout: float = PROCESS_TIMEOUT_S) -> Completed:
        stdout, stderr = await asyncio.wait_for(self.process.communicate(), timeout)
        assert self.process.returncode is not None
        return Completed(self.process.returncode, stdout.decode(), stderr.decode())


async def start_run(
    tmp_path: Path,
    run_args: Sequence[str],
    *,
    plan: Mapping[str, Any] | None = None,
    env: Mapping[str, str],
    new_session: bool = False,
) -> FakeClaudeRun:
    """`cc-proxy run <run_args>` with stdout/stderr captured (standing in for the terminal)."""
    report_path = tmp_path / "fake-claude-report.json"
    full_plan = {"report": str(report_path), **(plan or {})}
    process = await asyncio.create_subprocess_exec(
        *cc_proxy_argv("run", *run_args),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env, "FAKE_CLAUDE_PLAN": json.dumps(full_plan)},
        # Its own process group, as in a terminal, so a test can signal the whole group.
        start_new_session=new_session,
    )
    return FakeClaudeRun(process, report_path)


async def run_command(
    args: Sequence[str], *, env: Mapping[str, str], stdin: bytes | None = None
) -> Completed:
    """Any cc-proxy command to completion."""
    process = await asyncio.create_subprocess_exec(
        *cc_proxy_argv(*args),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin), PROCESS_TIMEOUT_S)
    assert process.returncode is not None
    return Completed(process.returncode, stdout.decode(), stderr.decode())


async def port_is_closed(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


def proxy_log_text(state_home: Path) -> str:
    """Everything cc-proxy logged under an XDG state directory (its per-user log files)."""
    return "".join(log.read_text(errors="replace") for log in sorted(state_home.rglob("*.log")))
