"""End to end with the real Claude Code: no turn is lost to a fault the upstream recovers from.

Each row of the reliability table in README.md: the upstream fails four times in a row (more
than the proxy's own two retries, so Claude Code's retry loop must take over), then answers;
the turn must end with the right answer and exit code 0. Plus a slow first byte held for 45 s,
and a small-window session that compacts instead of dying.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_claude_cli import chat_requests, run_claude, tool_messages
from tests.fake_upstream import (
    CAPACITY_ERROR,
    FakeUpstream,
    Reply,
    cf_error,
    text_stream,
    tool_call_stream,
)

pytestmark = pytest.mark.e2e

ANSWER = "Recovered and answered."
RATE_LIMITED = Reply.error(429, cf_error(3021, "Rate limited, slow down"), {"retry-after": "1"})
HTML_500 = Reply.error(500, "<html><body><h1>500 Internal Server Error</h1></body></html>")
OUT_OF_CAPACITY = Reply.error(429, CAPACITY_ERROR)


def dropped_after_two_chunks() -> Reply:
    """Two text chunks reach the client, then the connection drops."""
    chunks = text_stream("This partial answer will be cut off", pieces=6)
    return Reply.stream(chunks, drop_after=2, chunk_delay=0.1)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(RATE_LIMITED, id="429-rate-limited"),
        pytest.param(HTML_500, id="500-html"),
        pytest.param(OUT_OF_CAPACITY, id="429-out-of-capacity"),
        pytest.param(None, id="stream-dropped-after-content"),
    ],
)
async def test_four_failures_then_success_loses_no_turn(
    tmp_path: Path, claude_bin: str, upstream: FakeUpstream, failure: Reply | None
) -> None:
    failures = [dropped_after_two_chunks()] if failure is None else [failure] * 4
    upstream.enqueue(*failures, Reply.stream(text_stream(ANSWER)))
    run = await run_claude(
        tmp_path, claude_bin, upstream, "Say something.", extra_env={"CLAUDE_CODE_MAX_RETRIES": "3"}
    )
    result = run.result()
    assert run.returncode == 0, (result, run.stderr)
    assert result["is_error"] is False, result
    assert result["result"] == ANSWER
    assert len(chat_requests(upstream)) == len(failures) + 1


async def test_headers_held_for_45_seconds_cost_one_request(
    tmp_path: Path, claude_bin: str, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Reply.stream(text_stream(ANSWER), delay=45.0))
    run = await run_claude(tmp_path, claude_bin, upstream, "Think hard.", timeout=150.0)
    result = run.result()
    assert run.returncode == 0, (result, run.stderr)
    assert result["result"] == ANSWER
    assert len(chat_requests(upstream)) == 1, "claude must not give up on held headers"


SMALL_WINDOW = 40_000
FILES = ("one", "two", "three", "four", "five")
FILE_LINES = 300


def write_small_window_alias(isolated_user_dirs: Path) -> None:
    config = isolated_user_dirs / "config" / "cc-proxy" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "[models.tiny]\n"
        'model = "@cf/nvidia/nemotron-3-120b-a12b"\n'
        f"context_window = {SMALL_WINDOW}\n"
        "max_output_tokens = 8000\n"
    )


def is_compaction(body: Mapping[str, Any]) -> bool:
    return "Do NOT call any tools" in json.dumps(body["messages"][-1:])


class ReadingSession:
    """The model of a session that reads every file in turn, reporting honest usage (as
    Workers AI does) so Claude Code sees its context grow."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.reads = 0
        self.compactions = 0

    def __call__(self, body: Mapping[str, Any]) -> Reply:
        prompt_tokens = len(json.dumps(body["messages"])) // 4
        if is_compaction(body):
            self.compactions += 1
            summary = "<summary>The user asked to read the files; some were read.</summary>"
            return Reply.stream(text_stream(summary, prompt_tokens=prompt_tokens))
        if self.reads < len(FILES):
            path = self.work / f"{FILES[self.reads]}.py"
            self.reads += 1
            return Reply.stream(
                tool_call_stream("Read", {"file_path": str(path)}, prompt_tokens=prompt_tokens)
            )
        return Reply.stream(text_stream("DONE", prompt_tokens=prompt_tokens))


async def test_small_window_session_compacts_and_carries_on(
    tmp_path: Path, claude_bin: str, upstream: FakeUpstream, isolated_user_dirs: Path
) -> None:
    write_small_window_alias(isolated_user_dirs)
    work = tmp_path / "work"
    work.mkdir()
    for name in FILES:
        lines = [f"def {name}_{n}(x): return x * {n}  # {name} line {n}" for n in range(FILE_LINES)]
        (work / f"{name}.py").write_text("\n".join(lines) + "\n")
    session = ReadingSession(work)
    upstream.responder = session
    run = await run_claude(
        tmp_path,
        claude_bin,
        upstream,
        "Read every .py file here, one at a time, then say DONE.",
        "--allowedTools",
        "Read",
        model="tiny",
        timeout=240.0,
    )
    result = run.result()
    assert run.returncode == 0, (result, run.stderr[-2000:])
    assert result["is_error"] is False, result
    assert result["result"] == "DONE"
    assert session.compactions >= 1, "Claude Code never compacted"
    assert session.reads == len(FILES)
    # Every request kept room for a real answer (the summary included).
    assert all(r.body["max_tokens"] >= 4096 for r in chat_requests(upstream))


async def test_a_stream_dropped_after_a_complete_tool_call_runs_the_tool_once(
    tmp_path: Path, claude_bin: str, upstream: FakeUpstream
) -> None:
    """Tool calls stream as they are written, so a drop after a complete call reaches Claude
    Code after that call's block: it must re-send the turn without having run the tool."""
    counter = tmp_path / "runs.txt"
    call = {"command": f"echo ran >> {counter}", "description": "Count a run"}
    upstream.enqueue(
        # The name, the complete arguments, then the connection drops before finish_reason.
        Reply.stream(tool_call_stream("Bash", call), drop_after=2, chunk_delay=0.2),
        Reply.stream(tool_call_stream("Bash", call)),
        Reply.stream(text_stream(ANSWER)),
    )
    run = await run_claude(
        tmp_path, claude_bin, upstream, "Count once.", "--allowedTools", "Bash",
        extra_env={"CLAUDE_CODE_MAX_RETRIES": "3"},
    )  # fmt: skip
    result = run.result()
    assert run.returncode == 0, (result, run.stderr)
    assert result["result"] == ANSWER
    runs = counter.read_text().splitlines() if counter.exists() else []
    assert runs == ["ran"]  # neither twice (run mid-stream, then again) nor never
    requests = chat_requests(upstream)
    assert len(requests) == 3
    # The re-sent turn carries nothing of the dropped attempt: its unstopped block was dropped.
    assert [m["role"] for m in requests[1].body["messages"]] == [
        m["role"] for m in requests[0].body["messages"]
    ]
    assert len(tool_messages(requests[2])) == 1
