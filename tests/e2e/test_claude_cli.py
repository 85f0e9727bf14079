"""End to end: `cc-proxy run` with the real Claude Code CLI against the scripted fake upstream.

The pinned client (@anthropic-ai/claude-code@2.1.332) runs headless (`-p`) in a throwaway HOME.
It is found through $CC_PROXY_TEST_CLAUDE or `claude` on PATH; in CI a missing client fails the
run, elsewhere the module is skipped with the reason shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import struct
import termios
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyte
import pytest

from tests.fake_upstream import (
    FakeUpstream,
    RecordedRequest,
    Reply,
    cf_error,
    chunk,
    text_stream,
    tool_call_stream,
    usage_block,
)
from tests.launcher.harness import GATEWAY_TOKEN, cc_proxy_argv, upstream_env
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

NEMOTRON_ID = "workers-ai/@cf/nvidia/nemotron-3-120b-a12b"
RUN_TIMEOUT_S = 90.0
TERMINAL_LINES, TERMINAL_COLUMNS = 40, 120


@dataclass
class ClaudeRun:
    returncode: int
    stdout: str
    stderr: str

    def result(self) -> dict[str, Any]:
        """The `result` object, from `--output-format json` or the last stream-json line."""
        lines = [json.loads(line) for line in self.stdout.splitlines() if line.strip()]
        assert lines, f"claude printed nothing; stderr: {self.stderr}"
        final = lines[-1]
        assert final.get("type") == "result", final
        return final

    def successful_result(self) -> dict[str, Any]:
        """The `result` object of a run that exited 0 without an error."""
        result = self.result()
        assert self.returncode == 0, self.stderr
        assert result["is_error"] is False, result
        return result

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


async def run_claude(
    tmp_path: Path,
    claude_bin: str,
    upstream: FakeUpstream,
    prompt: str,
    *claude_args: str,
    output_format: str = "json",
    model: str = "nemotron",
    extra_env: dict[str, str] | None = None,
    timeout: float = RUN_TIMEOUT_S,
) -> ClaudeRun:
    """`cc-proxy run MODEL -- -p PROMPT --output-format FMT [args]` in a throwaway HOME."""
    home, work = tmp_path / "claude-home", tmp_path / "work"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    env = {
        **os.environ,
        **upstream_env(upstream.url),
        "HOME": str(home),
        "CLAUDE_CODE_MAX_RETRIES": "2",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
        **(extra_env or {}),
    }
    argv = cc_proxy_argv(
        "run", model, "--quiet", "--claude", claude_bin, "--",
        "-p", prompt, "--output-format", output_format, *claude_args,
    )  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=work,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return ClaudeRun(process.returncode, stdout.decode(), stderr.decode())


def chat_requests(upstream: FakeUpstream) -> list[RecordedRequest]:
    return [r for r in upstream.requests if r.path.endswith("/chat/completions")]


def tool_messages(request: RecordedRequest) -> list[dict[str, Any]]:
    return [m for m in request.body["messages"] if m["role"] == "tool"]


def assistant_tool_call_ids(request: RecordedRequest) -> list[str]:
    return [
        call["id"]
        for message in request.body["messages"]
        if message["role"] == "assistant"
        for call in message.get("tool_calls") or []
    ]


def parallel_bash_stream(commands: Sequence[str]) -> list[dict[str, Any]]:
    """Several Bash calls in one reply, each under its own index (OpenAI parallel tool calls)."""
    chunks = [
        chunk(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": f"call_parallel_{index}",
                        "type": "function",
                        "index": index,
                        "function": {
                            "name": "Bash",
                            "arguments": json.dumps(
                                {"command": command, "description": f"step {index}"}
                            ),
                        },
                    }
                ],
            },
            usage=usage_block(30, index + 1),
        )
        for index, command in enumerate(commands)
    ]
    chunks.append(chunk({}, finish_reason="tool_calls", usage=usage_block(30, 12)))
    return chunks


async def test_plain_answer(tmp_path: Path, claude_bin: str, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply.stream(text_stream("The capital of France is Paris.")))
    run = await run_claude(tmp_path, claude_bin, upstream, "What is the capital of France?")

    result = run.successful_result()
    assert result["result"] == "The capital of France is Paris."
    assert result["usage"]["input_tokens"] == 20  # what the upstream reported
    [request] = chat_requests(upstream)
    assert request.path == "/v1/acct/gw/compat/chat/completions"
    assert request.headers["cf-aig-authorization"] == f"Bearer {GATEWAY_TOKEN}"
    assert request.body["model"] == NEMOTRON_ID
    assert request.body["stream"] is True
    assert "What is the capital of France?" in json.dumps(request.body["messages"])
    assert "Bash" in [tool["function"]["name"] for tool in request.body["tools"]]
    # Claude Code meters the model's real window, not the 1M it assumes for unknown names.
    assert result["modelUsage"]["nemotron"]["contextWindow"] == 256_000


async def test_bash_tool_round_trip(
    tmp_path: Path, claude_bin: str, upstream: FakeUpstream
) -> None:
    upstream.enqueue(
        Reply.stream(
            tool_call_stream(
                "Bash", {"command": "echo tool-output-$((6*7))", "description": "Print a value"}
            )
        ),
        Reply.stream(text_stream("The command printed tool-output-42.")),
    )
    run = await run_claude(
        tmp_path, claude_bin, upstream, "Run the echo command.", "--allowedTools", "Bash"
    )

    result = run.successful_result()
    assert result["result"] == "The command printed tool-output-42."
    first, second = chat_requests(upstream)
    assert tool_messages(first) == []
    [tool_message] = tool_messages(second)
    # The shell really ran: 6*7 was computed by it, not by anyone in this test.
    assert "tool-output-42" in json.dumps(tool_message["content"])
    assert tool_message["tool_call_id"] in assistant_tool_call_ids(second)


async def test_parallel_tool_calls_both_results_come_back(
    tmp_path: Path, claude_bin: str, upstream: FakeUpstream
) -> None:
    upstream.enqueue(
        Reply.stream(parallel_bash_stream(["echo first-$((2+3))", "echo second-$((4*4))"])),
        Reply.stream(text_stream("Both commands ran.")),
    )
    run = await run_claude(
        tmp_path, claude_bin, upstream, "Run both commands.", "--allowedTools", "Bash"
    )

    result = run.successful_result()
    assert result["result"] == "Both commands ran."
    _, second = chat_requests(upstream)
    call_ids = assistant_tool_call_ids(second)
    results = {m["tool_call_id"]: json.dumps(m["content"]) for m in tool_messages(second)}
    assert len(call_ids) == 2
    assert set(results) == set(call_ids)
    outputs = " ".join(results.values())
    assert "first-5" in outputs
    assert "second-16" in outputs


async def test_reasoning_is_streamed_as_thinking_and_the_answer_stays_correct(
    tmp_path: Path, claude_bin: str, upstream: FakeUpstream
) -> None:
    reasoning = "The user asks why the sky is blue. Rayleigh scattering favours short wavelengths."
    upstream.enqueue(
        Reply.stream(text_stream("Because of Rayleigh scattering.", reasoning=reasoning))
    )
    run = await run_claude(
        tmp_path,
        claude_bin,
        upstream,
        "Why is the sky blue?",
        "--verbose",
        output_format="stream-json",
    )

    result = run.successful_result()
    assert result["result"] == "Because of Rayleigh scattering."
    blocks = [
        block
        for event in run.events()
        if event.get("type") == "assistant"
        for block in event["message"]["content"]
    ]
    thinking = [block["thinking"] for block in blocks if block["type"] == "thinking"]
    assert thinking == [reasoning]
    assert len(chat_requests(upstream)) == 1


async def test_rate_limited_upstream_then_success(
    tmp_path: Path, claude_bin: str, upstream: FakeUpstream
) -> None:
    rate_limited = Reply.error(429, cf_error(3040, "Capacity temporarily exceeded"))
    upstream.enqueue(
        rate_limited, rate_limited, rate_limited, Reply.stream(text_stream("Recovered fine."))
    )
    run = await run_claude(tmp_path, claude_bin, upstream, "Say something.")

    result = run.successful_result()
    assert result["result"] == "Recovered fine."
    # Each attempt consumed one scripted reply: three 429s, then the answer.
    assert upstream.pending == 0
    assert len(chat_requests(upstream)) == 4


class Terminal:
    """A pseudo-terminal as claude's controlling terminal, read without blocking the loop."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        fcntl.ioctl(
            self.slave,
            termios.TIOCSWINSZ,
            struct.pack("HHHH", TERMINAL_LINES, TERMINAL_COLUMNS, 0, 0),
        )
        self.output = b""

    def make_controlling(self) -> None:  # runs in the child, before exec
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    def text(self) -> str:
        """The output with escape sequences removed (enough to find words on the screen)."""
        plain = ANSI_ESCAPE.sub(b"", self.output).decode(errors="replace")
        return " ".join(plain.split())

    def screen(self) -> str:
        """The screen as a terminal shows it now (pyte, a VT100 emulator, replays everything
        written), lines joined, trailing blanks removed. claude redraws only the cells that
        change, so the raw output can lack a character that was already on screen there: look
        for whole phrases on the screen, not in text()."""
        screen = pyte.Screen(TERMINAL_COLUMNS, TERMINAL_LINES)
        pyte.ByteStream(screen).feed(self.output)
        return "\n".join(line.rstrip() for line in screen.display)

    def mark(self) -> int:
        """A position in text(); `read_until(..., since=mark)` only looks at what came after."""
        return len(self.text())

    async def read_until(self, needle: str, timeout: float, *, since: int = 0) -> bool:
        """Whether `needle` shows (after `since`) within `timeout` s. Spaces do not count:
        claude's input box draws a typed space as a cursor move."""
        wanted = "".join(needle.split())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while wanted not in "".join(self.text()[since:].split()):
            if loop.time() > deadline:
                return False
            readable = asyncio.Event()
            loop.add_reader(self.master, readable.set)
            try:
                await asyncio.wait_for(readable.wait(), 0.2)
                self.output += os.read(self.master, 65536)
            except (asyncio.TimeoutError, OSError):
                pass
            finally:
                loop.remove_reader(self.master)
        return True

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def in_raw_mode(self) -> bool:
        """Whether the terminal neither edits lines nor echoes: a full-screen program that
        reads key by key has set it so (the shell's line editor does too, at its prompt)."""
        local_flags = termios.tcgetattr(self.slave)[3]
        return not local_flags & (termios.ICANON | termios.ECHO)

    async def wait_for_prompt(self, timeout: float, *, since: int = 0) -> None:
        """Claude has drawn its input box (after `since`) and reads keys: typing is safe."""
        assert await self.read_until(PROMPT_FOOTER, timeout, since=since), self.text()[-2000:]
        await eventually(self.in_raw_mode, timeout, what="the terminal in raw mode")

    async def submit(self, text: str, timeout: float = 15.0) -> None:
        """Type `text` into claude's input box, then press Enter once claude shows the text:
        Enter arrives as a key of its own, after the text was taken in, as when a person types."""
        since = self.mark()
        self.type(text)
        assert await self.read_until(text, timeout, since=since), self.text()[-2000:]
        self.type("\r")

    async def press_ctrl_c_twice(self, timeout: float = 15.0) -> None:
        """Claude's way out: Ctrl-C, then Ctrl-C again while it offers to exit."""
        since = self.mark()
        self.type("\x03")
        assert await self.read_until(CTRL_C_AGAIN, timeout, since=since), self.text()[-2000:]
        self.type("\x03")

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


# The footer of claude's input box (redrawn whenever the box is), and its exit offer.
PROMPT_FOOTER = "shift+tab to cycle"
CTRL_C_AGAIN = "Press Ctrl-C again to exit"
ANSI_ESCAPE = re.compile(
    rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-B]|\x1b[78=>]"
)


def interactive_setup(tmp_path: Path, upstream: FakeUpstream) -> tuple[Path, dict[str, str]]:
    """A throwaway HOME where claude skips the first-run theme picker and the folder-trust
    question (nothing else is asked with a token from the environment), and the environment."""
    home, work = tmp_path / "claude-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (home / ".claude.json").write_text(
        json.dumps(
            {
                "hasCompletedOnboarding": True,
                "theme": "dark",
                "projects": {str(work): {"hasTrustDialogAccepted": True}},
            }
        )
    )
    env = {
        **os.environ,
        **upstream_env(upstream.url),
        "HOME": str(home),
        "TERM": "xterm-256color",
        "CLAUDE_CODE_MAX_RETRIES": "2",
    }
    return work, env


@contextlib.asynccontextmanager
async def in_terminal(
    work: Path, env: dict[str, str], *cc_proxy_args: str
) -> AsyncIterator[tuple[Terminal, asyncio.subprocess.Process]]:
    """`cc-proxy <args>` with a pseudo-terminal as its controlling terminal, as a person runs
    it; killed (if still running) and the terminal closed on the way out."""
    terminal = Terminal()
    process = await asyncio.create_subprocess_exec(
        *cc_proxy_argv(*cc_proxy_args),
        cwd=work,
        env=env,
        stdin=terminal.slave,
        stdout=terminal.slave,
        stderr=terminal.slave,
        preexec_fn=terminal.make_controlling,
    )
    try:
        yield terminal, process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        terminal.close()


async def test_interactive_session_in_a_terminal(
    tmp_path: Path, claude_bin: str, upstream: FakeUpstream
) -> None:
    """The TUI owns the terminal: the answer shows, Ctrl-C twice quits, cc-proxy prints its
    summary only after claude has exited, and exits with claude's code."""
    work, env = interactive_setup(tmp_path, upstream)
    upstream.enqueue(Reply.stream(text_stream("PTY-ANSWER-OK from the fake model")))
    async with in_terminal(work, env, "run", "nemotron", "--claude", claude_bin) as (
        terminal,
        process,
    ):
        assert await terminal.read_until("nemotron", 30), terminal.text()[-2000:]
        await terminal.wait_for_prompt(30)
        await terminal.submit("hello from a terminal")
        assert await terminal.read_until("PTY-ANSWER-OK", 30), terminal.text()[-2000:]
        await terminal.press_ctrl_c_twice()
        assert await terminal.read_until("estimated cost", 30), terminal.text()[-2000:]
        code = await asyncio.wait_for(process.wait(), 30)

    screen = terminal.text()
    assert code == 0
    assert "Resume this session" in screen  # claude's own goodbye
    assert "cc-proxy" not in screen[: screen.index("Resume this session")]
    assert "cc-proxy: 1 request;" in screen[screen.index("Resume this session") :]
    [request] = chat_requests(upstream)
    assert "hello from a terminal" in json.dumps(request.body["messages"])


async def test_ctrl_z_suspends_the_session_and_fg_resumes_it_under_a_shell(
    tmp_path: Path, claude_bin: str, upstream: FakeUpstream
) -> None:
    """Job control: claude stops its whole process group on Ctrl-Z, so the shell gets the
    terminal back; after `fg` claude and the proxy carry on."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is needed for a job-control shell")
    work, env = interactive_setup(tmp_path, upstream)
    env["PS1"] = "SHELL-PROMPT$ "
    upstream.enqueue(
        Reply.stream(text_stream("FIRST-ANSWER-OK")), Reply.stream(text_stream("SECOND-ANSWER-OK"))
    )
    command = " ".join(
        shlex.quote(word) for word in cc_proxy_argv("run", "-q", "--claude", claude_bin)
    )
    terminal = Terminal()
    shell = await asyncio.create_subprocess_exec(
        bash, "--norc", "--noprofile", "-i",
        cwd=work, env=env, stdin=terminal.slave, stdout=terminal.slave, stderr=terminal.slave,
        preexec_fn=terminal.make_controlling,
    )  # fmt: skip
    try:
        assert await terminal.read_until("SHELL-PROMPT$", 10), terminal.text()[-2000:]
        terminal.type(command + "\r")
        assert await terminal.read_until("nemotron", 30), terminal.text()[-2000:]
        await terminal.wait_for_prompt(30)
        await terminal.submit("first question")
        assert await terminal.read_until("FIRST-ANSWER-OK", 30), terminal.text()[-2000:]

        terminal.type("\x1a")  # Ctrl-Z
        assert await terminal.read_until("Stopped", 15), terminal.text()[-2000:]
        resumed = terminal.mark()
        terminal.type("fg\r")
        await terminal.wait_for_prompt(30, since=resumed)  # claude redrew its box: it is back
        await terminal.submit("second question")
        assert await terminal.read_until("SECOND-ANSWER-OK", 30), terminal.text()[-2000:]

        exiting = terminal.mark()
        await terminal.press_ctrl_c_twice()
        assert await terminal.read_until("SHELL-PROMPT$", 30, since=exiting), terminal.text()[
            -2000:
        ]
        terminal.type("echo cc-proxy-exit=$?\r")
        assert await terminal.read_until("cc-proxy-exit=0", 30), terminal.text()[-2000:]
        terminal.type("exit\r")
        await asyncio.wait_for(shell.wait(), 15)
    finally:
        if shell.returncode is None:
            shell.kill()
            await shell.wait()
        terminal.close()

    assert len(chat_requests(upstream)) == 2
