"""`cc-proxy run --statusline` with the real client: Claude Code runs `cc-proxy statusline` after
each answer and shows the session's real cost and tokens from the ledger, and the real window."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.test_claude_cli import Terminal, in_terminal, interactive_setup
from tests.fake_upstream import FakeUpstream, Reply, text_stream
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


async def test_claude_shows_cc_proxys_status_line_under_its_prompt(
    tmp_path: Path, claude_bin: str, upstream: FakeUpstream
) -> None:
    work, env = interactive_setup(tmp_path, upstream)
    upstream.enqueue(Reply.stream(text_stream("FIRST-ANSWER-OK")))
    upstream.enqueue(Reply.stream(text_stream("SECOND-ANSWER-OK")))
    async with in_terminal(
        work, env, "run", "nemotron", "--statusline", "--claude", claude_bin
    ) as (terminal, process):
        await terminal.wait_for_prompt(30)
        # Before any answer: the model, nothing spent in this session yet, the real window.
        first_line = "nemotron │ no requests yet │ context 256k │ today $0.00"
        await eventually(lambda: _shown(terminal, first_line), 30, what=f"{first_line!r}")
        await terminal.submit("hello")
        assert await terminal.read_until("FIRST-ANSWER-OK", 30), terminal.text()[-2000:]
        since = terminal.mark()
        await terminal.submit("again")
        assert await terminal.read_until("SECOND-ANSWER-OK", 30, since=since)
        # After the answers the ledger holds this session's requests (20 input + 4 output
        # tokens each, at Nemotron's price) and claude has redrawn the line.
        line = "nemotron │ session <$0.0001, 48 tokens │ context 20 of 256k (0%) │ today <$0.0001"
        await eventually(lambda: _shown(terminal, line), 30, what=f"{line!r} on the screen")
        await terminal.press_ctrl_c_twice()
        code = await asyncio.wait_for(process.wait(), 30)
    assert code == 0


async def _shown(terminal: Terminal, text: str) -> bool:
    """Whether the screen shows `text`, after taking in what claude has written since."""
    await terminal.read_until("\x00never", 0.2)
    return text in terminal.screen()
