"""`cc-proxy serve`: a foreground proxy another client reaches with the printed variables."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import anthropic
import pytest

from tests.fake_upstream import FakeUpstream
from tests.launcher.harness import cc_proxy_argv, port_is_closed, run_command, upstream_env
from tests.ledger.records import summaries_by_session

CHOSEN_TOKEN = "a-token-the-user-chose-0123456789"


@dataclass
class Serving:
    process: asyncio.subprocess.Process
    exports: dict[str, str]
    unset: list[str]

    @property
    def port(self) -> int:
        port = urlsplit(self.exports["ANTHROPIC_BASE_URL"]).port
        assert port is not None
        return port

    def client(self, token: str | None = None) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            base_url=self.exports["ANTHROPIC_BASE_URL"],
            auth_token=token or self.exports["ANTHROPIC_AUTH_TOKEN"],
            api_key=None,
            max_retries=0,
        )

    async def stop(self, sig: signal.Signals = signal.SIGINT) -> tuple[int, str]:
        self.process.send_signal(sig)
        assert self.process.stderr is not None
        stderr = await asyncio.wait_for(self.process.stderr.read(), 30)
        code = await asyncio.wait_for(self.process.wait(), 30)
        return code, stderr.decode()


async def start_serve(
    args: list[str], env: Mapping[str, str], stdin: bytes | None = None
) -> Serving:
    """Start `cc-proxy serve` and read its export lines (the last one is `unset ...`)."""
    process = await asyncio.create_subprocess_exec(
        *cc_proxy_argv("serve", *args),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    assert process.stdin is not None and process.stdout is not None
    if stdin is not None:
        process.stdin.write(stdin)
    process.stdin.close()
    exports: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        if not line:
            break
        words = shlex.split(line)
        if words[0] == "unset":
            return Serving(process, exports, words[1:])
        assert words[0] == "export", line
        name, _, value = words[1].partition("=")
        exports[name] = value
    process.kill()
    raise AssertionError(f"serve printed no complete export block: {exports}")


async def test_serve_prints_variables_a_client_uses_and_stops_cleanly_on_ctrl_c(
    upstream: FakeUpstream,
) -> None:
    serving = await start_serve(["gpt-oss"], env=upstream_env(upstream.url))
    reply = await serving.client().messages.create(
        model=serving.exports["ANTHROPIC_MODEL"],
        max_tokens=100,
        messages=[{"role": "user", "content": "hello from an IDE"}],
    )
    code, stderr = await serving.stop(signal.SIGINT)

    assert reply.content[0].type == "text"
    assert reply.content[0].text == "echo: hello from an IDE"
    assert serving.exports["ANTHROPIC_MODEL"] == "gpt-oss"
    assert serving.exports["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "128000"
    # What a claude started from these lines sees: the real window, the catalog in /model, the
    # session's model by name.
    assert serving.exports["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "128000"
    assert serving.exports["CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY"] == "1"
    assert serving.exports["ANTHROPIC_CUSTOM_MODEL_OPTION_NAME"] == "gpt-oss 120B · Workers AI"
    assert urlsplit(serving.exports["ANTHROPIC_BASE_URL"]).hostname == "127.0.0.1"
    assert "ANTHROPIC_API_KEY" in serving.unset
    assert code == 0
    assert "Traceback" not in stderr
    assert "cc-proxy: 1 request;" in stderr  # the session summary
    # ...read back from the ledger's rows for this proxy session.
    [stored] = summaries_by_session(Path(os.environ["CC_PROXY_LEDGER"])).values()
    assert stored.render() in stderr
    assert stored.output_tokens == reply.usage.output_tokens
    assert await port_is_closed(serving.port)


async def test_serve_stops_cleanly_on_sigterm(upstream: FakeUpstream) -> None:
    serving = await start_serve(["--quiet"], env=upstream_env(upstream.url))
    code, stderr = await serving.stop(signal.SIGTERM)
    assert (code, stderr) == (0, "")
    assert await port_is_closed(serving.port)


async def test_serve_rejects_a_client_without_the_token(upstream: FakeUpstream) -> None:
    serving = await start_serve(["-q"], env=upstream_env(upstream.url))
    try:
        with pytest.raises(anthropic.AuthenticationError):
            await serving.client("wrong-token").messages.create(
                model="nemotron", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        await serving.stop()
    assert upstream.requests == []


@pytest.mark.parametrize("source", ["env", "stdin"])
async def test_serve_uses_the_token_the_user_chose(upstream: FakeUpstream, source: str) -> None:
    env = upstream_env(upstream.url)
    if source == "env":
        serving = await start_serve(["-q"], env={**env, "CC_PROXY_TOKEN": CHOSEN_TOKEN})
    else:
        serving = await start_serve(
            ["-q", "--token-stdin"], env=env, stdin=f"{CHOSEN_TOKEN}\n".encode()
        )
    try:
        assert serving.exports["ANTHROPIC_AUTH_TOKEN"] == CHOSEN_TOKEN
        reply = await serving.client(CHOSEN_TOKEN).messages.create(
            model="nemotron", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.content
    finally:
        await serving.stop()


async def test_serve_on_a_fixed_port(upstream: FakeUpstream) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    serving = await start_serve(["-q", "--port", str(port)], env=upstream_env(upstream.url))
    await serving.stop()
    assert serving.port == port


async def test_serve_on_a_busy_port_is_one_clear_line(upstream: FakeUpstream) -> None:
    busy = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = busy.sockets[0].getsockname()[1]
    try:
        done = await run_command(["serve", "--port", str(port)], env=upstream_env(upstream.url))
    finally:
        busy.close()
    assert done.returncode != 0
    assert done.stdout == ""
    assert f"127.0.0.1:{port}" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(
    ("args", "env_token", "stdin", "message"),
    [
        (["--host", "0.0.0.0"], None, None, "--allow-remote"),
        (["--host", "192.0.2.1", "--allow-remote"], None, None, "token"),
        (["--host", "0.0.0.0", "--allow-remote"], "short", None, "at least 16"),
        (["--token-stdin"], None, b"\n", "no token on stdin"),
    ],
)
async def test_serve_refuses_unsafe_or_incomplete_setups(
    upstream: FakeUpstream,
    args: list[str],
    env_token: str | None,
    stdin: bytes | None,
    message: str,
) -> None:
    env = upstream_env(upstream.url)
    if env_token is not None:
        env["CC_PROXY_TOKEN"] = env_token
    done = await run_command(["serve", *args], env=env, stdin=stdin)
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
