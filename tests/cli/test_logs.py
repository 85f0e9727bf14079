"""`cc-proxy logs`: proxy.log read back for a person. The lines come from a real proxy (the real
app and middlewares, the official SDK as client, the scripted fake upstream for the failures),
logging to the path the command reads; rotation is the proxy's own handler with a small size."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO

import anthropic
import pytest
from aiohttp import web

from cc_nemo.cli import logs as cli_logs
from cc_nemo.cli.log_lines import Renderer, parse_records, parse_request_fields, plain
from cc_nemo.cli.logs import Output
from cc_nemo.proxy import logs as proxy_logs
from cc_nemo.proxy.app import create_app
from cc_nemo.settings.catalog import Catalog
from cc_nemo.settings.config import proxy_log_path
from tests.cli.conftest import run_cli
from tests.fake_upstream import CAPACITY_ERROR, Reply, cf_error, completion, text_stream
from tests.fixtures import SESSION_TOKEN, MakeProxy, ProxyUnderTest
from tests.waiting import eventually

MESSAGES = [{"role": "user", "content": "hi"}]
MODEL = "claude-sonnet-5"
SESSION_A = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"
SESSION_B = "3f2b0000-1111-4222-8333-444455556666"
SESSION_HEADER = "x-claude-code-session-id"
TIME = re.compile(r"^\d\d:\d\d:\d\d  ")
BUG_MESSAGE = "the proxy tripped over its own feet"


@dataclass
class RealLog:
    """Request ids of a real proxy session, by what happened to each request."""

    ids: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, scenario: str) -> str:
        return self.ids[scenario]


def flush_log() -> None:
    """Wait until every record the proxy queued is in the file (it writes from a thread)."""
    for handler in logging.getLogger("cc_nemo").handlers:
        handler.flush()


def lines_with(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


@contextlib.asynccontextmanager
async def bug_route(proxy: ProxyUnderTest) -> AsyncIterator[int]:
    """The real app and middlewares with one route that fails with an unexpected exception, so
    the log gets a real traceback (the session token in it, for the redaction check)."""
    app = create_app(proxy.settings)

    async def bug(request: web.Request) -> web.StreamResponse:
        raise RuntimeError(f"{BUG_MESSAGE} {SESSION_TOKEN}")

    app.router.add_get("/v1/bug", bug)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def run_real_session(make_proxy: MakeProxy) -> tuple[ProxyUnderTest, RealLog]:
    """A proxy logging to proxy_log_path(), and one request of every kind the log records."""
    catalog = Catalog.build()
    proxy = await make_proxy(
        log_file=proxy_log_path(),
        max_retries=1,
        fallbacks={"nemotron": (catalog.resolve("kimi"),)},
    )
    log = RealLog()
    fake = proxy.fake
    session_a = proxy.client(default_headers={SESSION_HEADER: SESSION_A})
    session_b = proxy.client(default_headers={SESSION_HEADER: SESSION_B})
    async with session_a as client, session_b as other:
        fake.enqueue(Reply.json(completion("hello", cached_tokens=8)))
        message = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        log.ids["ok"] = message._request_id or ""

        fake.enqueue(Reply.stream(text_stream("hello there")))
        async with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
            await stream.get_final_message()
        log.ids["stream"] = stream.request_id or ""

        fake.enqueue(Reply.error(429, CAPACITY_ERROR), Reply.json(completion("after a retry")))
        message = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        log.ids["retried"] = message._request_id or ""

        fake.enqueue(
            Reply.error(429, CAPACITY_ERROR),
            Reply.error(429, CAPACITY_ERROR),
            Reply.stream(text_stream("from kimi")),
        )
        async with other.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
            await stream.get_final_message()
        log.ids["fallback"] = stream.request_id or ""

        fake.enqueue(*[Reply.error(429, CAPACITY_ERROR)] * 4)
        with pytest.raises(anthropic.APIStatusError) as overloaded:
            await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        assert overloaded.value.status_code == 529
        log.ids["overloaded"] = overloaded.value.request_id or ""

        fake.enqueue(*[Reply.error(500, cf_error(5000, "Internal server error"))] * 2)
        with pytest.raises(anthropic.InternalServerError) as failed:
            await other.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        log.ids["server_error"] = failed.value.request_id or ""

        models = await client.models.with_raw_response.list()
        log.ids["models"] = models.headers["request-id"]

        fake.enqueue(Reply.hang(30))
        with pytest.raises(anthropic.APITimeoutError):
            await client.messages.create(
                model=MODEL, max_tokens=100, messages=MESSAGES, timeout=0.3
            )
    async with (
        bug_route(proxy) as port,
        proxy.client(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        with pytest.raises(anthropic.InternalServerError) as bug:
            await client.get("/v1/bug", cast_to=object)
    log.ids["bug"] = bug.value.request_id or ""
    flush_log()
    log.ids["closed"] = await eventually(lambda: _closed_request_id(proxy_log_path()), 5)
    assert all(log.ids.values()), log.ids
    return proxy, log


def _closed_request_id(path: Path) -> str | None:
    flush_log()
    found = re.search(r"(req_\w+) POST /v1/messages .*status=499", path.read_text())
    return found.group(1) if found else None


@pytest.fixture
async def real_log(make_proxy: MakeProxy) -> RealLog:
    _, log = await run_real_session(make_proxy)
    return log


# ---- the default view ---------------------------------------------------------------------------


async def test_every_kind_of_real_request_is_one_readable_line(real_log: RealLog) -> None:
    result = run_cli("logs", "-n", "50")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "status=" not in out and "duration_ms=" not in out and "\x1b[" not in out
    assert all(TIME.match(line) for line in out.splitlines()), out

    def request_line(scenario: str) -> str:
        [line] = [line for line in lines_with(out, real_log[scenario]) if "WARN" not in line]
        return line

    ok = request_line("ok")
    assert re.search(r"  200 +whole +claude-sonnet-5 → nemotron-3-120b-a12b  in 12 \(8 cached\) "
                     r"· out 5 · ttft \d+ ms · \d+ ms  req_", ok), ok  # fmt: skip
    assert "attempts" not in ok
    assert lines_with(out, real_log["ok"]) == [ok]
    stream = request_line("stream")
    assert " 200 " in stream and " stream " in stream
    retried = request_line("retried")
    assert " 200 " in retried and "2 attempts" in retried
    [warning] = [line for line in lines_with(out, real_log["retried"]) if line != retried]
    assert re.search(r"  WARN +upstream answered 429: .*Capacity temporarily exceeded", warning)
    fallback = request_line("fallback")
    assert "→ kimi-k2.6" in fallback and "answered by kimi: nemotron out of capacity" in fallback
    overloaded = request_line("overloaded")
    assert " 529 " in overloaded and "overloaded_error" in overloaded and "in " not in overloaded
    server_error = request_line("server_error")
    assert " 500 " in server_error and "api_error" in server_error
    closed = request_line("closed")
    assert " 499 " in closed and "client_closed" in closed
    assert re.search(r" 200 +GET /v1/models  \d+ ms  req_", request_line("models"))
    # The traceback collapsed to its last line; the token the exception quoted stays redacted.
    [bug] = [line for line in lines_with(out, real_log["bug"]) if "ERROR" in line]
    assert f"ERROR unhandled error — RuntimeError: {BUG_MESSAGE} [REDACTED]" in bug
    assert "Traceback" not in out and SESSION_TOKEN not in out
    assert lines_with(out, "proxy starting: provider=cloudflare")
    # Newest at the bottom, in the order the requests were made.
    order = [out.index(real_log[name]) for name in ("ok", "stream", "retried", "fallback")]
    assert order == sorted(order)


async def test_n_counts_requests_and_keeps_their_warnings(real_log: RealLog) -> None:
    out = run_cli("logs", "-n", "2").stdout
    shown = set(re.findall(r"req_\w+", out))
    # The last two requests: the client that went away, then the bug (on another app).
    assert shown == {real_log["closed"], real_log["bug"]}
    out = run_cli("logs", "-n", "6").stdout
    assert real_log["fallback"] in out and real_log["retried"] not in out
    # The fallback's warnings came before its request line: they are its, so they are shown.
    assert len(lines_with(out, real_log["fallback"])) == 4


async def test_reading_back_from_the_end_in_small_pieces_changes_nothing(
    real_log: RealLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is read from its end in growing pieces, each cut anywhere (mid-traceback,
    mid-line): what is shown is what a whole read shows."""
    for args in [("-n", str(n)) for n in range(1, 12)] + [("--errors", "-n", "3")]:
        monkeypatch.setattr(cli_logs, "TAIL_BYTES", 256 * 1024)
        whole = run_cli("logs", *args).stdout
        for piece in (97, 300, 1000):
            monkeypatch.setattr(cli_logs, "TAIL_BYTES", piece)
            assert run_cli("logs", *args).stdout == whole, (args, piece)


async def test_errors_shows_failed_requests_and_warnings_only(real_log: RealLog) -> None:
    out = run_cli("logs", "--errors", "-n", "50").stdout
    for failed in ("overloaded", "server_error", "closed", "bug"):
        assert real_log[failed] in out
    for fine in ("ok", "stream", "models"):
        assert real_log[fine] not in out
    # A request that succeeded after a retry: its warning, not its line.
    assert [line for line in lines_with(out, real_log["retried"])] == [
        line for line in lines_with(out, real_log["retried"]) if "WARN" in line
    ]
    for line in out.splitlines():
        assert re.search(r"  (WARN|ERROR) |  (4\d\d|5\d\d) ", line), line


async def test_request_shows_every_line_of_one_request_with_the_full_traceback(
    real_log: RealLog,
) -> None:
    out = run_cli("logs", "--request", real_log["retried"]).stdout
    assert set(re.findall(r"req_\w+", out)) == {real_log["retried"]}
    assert "retrying upstream in" in out  # a detail the default view leaves out
    assert len(out.splitlines()) == 3

    out = run_cli("logs", "--request", real_log["bug"]).stdout
    assert "Traceback (most recent call last):" in out
    assert re.search(
        r"^ {10}RuntimeError: " + re.escape(BUG_MESSAGE) + r" \[REDACTED\]$", out, re.M
    )
    assert SESSION_TOKEN not in out

    missing = run_cli("logs", "--request", "req_NoSuchRequest")
    assert missing.exit_code == 1 and missing.stdout == ""
    assert missing.stderr == (
        f"cc-proxy: error: no line of {proxy_log_path()} mentions req_NoSuchRequest\n"
    )


async def test_session_takes_a_unique_prefix(real_log: RealLog) -> None:
    out = run_cli("logs", "--session", SESSION_A[:4], "-n", "50").stdout
    shown = set(re.findall(r"req_\w+", out))
    assert shown == {real_log[name] for name in ("ok", "stream", "retried", "overloaded", "closed")}
    # The retried request's warning came before the line naming its session: still shown.
    assert len(lines_with(out, real_log["retried"])) == 2
    out = run_cli("logs", "--session", SESSION_B, "--errors").stdout
    assert set(re.findall(r"req_\w+", out)) == {real_log["server_error"], real_log["fallback"]}

    ambiguous = run_cli("logs", "--session", "3f2")
    assert ambiguous.exit_code == 1
    assert ambiguous.stderr == (
        f"cc-proxy: error: session '3f2' is ambiguous: it starts {SESSION_A}, {SESSION_B}; "
        "give more of it\n"
    )
    unknown = run_cli("logs", "--session", "ffff")
    assert unknown.exit_code == 1
    assert unknown.stderr == "cc-proxy: error: no request of session 'ffff' in the log\n"


async def test_n_counts_requests_by_when_they_ended(make_proxy: MakeProxy) -> None:
    """Concurrent requests interleave: the last request is the last to end, with its
    earlier lines, however early they were logged."""
    proxy = await make_proxy(log_file=proxy_log_path(), max_retries=1, retry_base_delay=0.5)
    proxy.fake.enqueue(
        Reply.error(429, CAPACITY_ERROR), Reply.json(completion("b")), Reply.json(completion("a"))
    )
    async with proxy.client() as client:
        slow = asyncio.create_task(
            client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
        )
        # The slow one has had its 429 and waits 0.5 s to retry; the quick one ends meanwhile.
        await proxy.fake.wait_for(lambda fake: len(fake.requests) == 1)
        await client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
        await slow
    flush_log()
    [*_, last_to_end] = re.findall(r"(req_\w+) POST /v1/messages", proxy_log_path().read_text())
    out = run_cli("logs", "-n", "1").stdout
    mine = lines_with(out, last_to_end)
    assert len(mine) == 2 and "WARN  upstream answered 429" in mine[0], out


# ---- rotation -----------------------------------------------------------------------------------


async def make_requests(proxy: ProxyUnderTest, count: int) -> list[str]:
    ids = []
    async with proxy.client() as client:
        for _ in range(count):
            proxy.fake.enqueue(Reply.json(completion("hi")))
            message = await client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
            ids.append(message._request_id or "")
    return ids


async def test_n_reads_back_across_rotated_files(
    make_proxy: MakeProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The proxy's own rotation, at a size that rolls over every few requests.
    monkeypatch.setattr(proxy_logs, "MAX_LOG_BYTES", 1200)
    proxy = await make_proxy(log_file=proxy_log_path())
    ids = await make_requests(proxy, 12)
    flush_log()
    path = proxy_log_path()
    assert path.with_name("proxy.log.2").exists()
    in_current = set(re.findall(r"req_\w+", path.read_text()))
    assert 0 < len(in_current) < 6

    out = run_cli("logs", "-n", "8").stdout
    assert re.findall(r"req_\w+", out) == ids[-8:]
    # Everything still on disk (the oldest backup has gone), oldest first.
    on_disk = re.findall(
        r"(req_\w+) POST",
        "".join(p.read_text() for p in sorted(path.parent.glob("proxy.log.*"), reverse=True))
        + path.read_text(),
    )
    assert re.findall(r"req_\w+", run_cli("logs", "-n", "100").stdout) == on_disk
    assert on_disk == ids[-len(on_disk) :]


# ---- follow -------------------------------------------------------------------------------------


class Follower:
    """`cc-proxy logs -f …` in a subprocess, its output lines collected by a thread."""

    def __init__(self, *args: str) -> None:
        code = "import sys; from cc_nemo.cli.main import main; main(sys.argv[1:])"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, "logs", "-f", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.errors: list[str] = []
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.lines.put)),
            threading.Thread(target=self._read, args=(self.process.stderr, self.errors.append)),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str], keep: Callable[[str], None]) -> None:
        for line in stream:
            keep(line)

    def output(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get().rstrip("\n"))
        if self.process.poll() is not None:
            raise AssertionError(f"logs -f exited with {self.process.returncode}")
        return "\n".join(self.seen)

    async def shows(self, *texts: str) -> str:
        return await eventually(
            lambda: all(text in self.output() for text in texts) and self.output(),
            10,
            what=f"logs -f to show {texts}",
        )

    def interrupt(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=10)
        for reader in self._readers:
            reader.join(timeout=10)
        return code, "".join(self.errors)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def follow() -> Iterator[type[Follower]]:
    started: list[Follower] = []

    class Started(Follower):
        def __init__(self, *args: str) -> None:
            super().__init__(*args)
            started.append(self)

    yield Started
    for follower in started:
        follower.kill()


async def test_follow_prints_appended_requests_and_survives_rotation(
    make_proxy: MakeProxy, monkeypatch: pytest.MonkeyPatch, follow: type[Follower]
) -> None:
    monkeypatch.setattr(proxy_logs, "MAX_LOG_BYTES", 1500)
    proxy = await make_proxy(log_file=proxy_log_path())
    [before] = await make_requests(proxy, 1)
    flush_log()
    follower = follow("-n", "1")
    await follower.shows(before)
    path = proxy_log_path()
    rotated = path.with_name("proxy.log.1")
    assert not rotated.exists()
    # One request at a time, each seen before the next: rotation happens in between.
    for _ in range(10):
        [request_id] = await make_requests(proxy, 1)
        flush_log()
        await follower.shows(request_id)
    assert rotated.exists()
    out = follower.output()
    requests = re.findall(r"req_\w+", out)
    assert len(requests) == 11 == len(set(requests))
    assert "status=" not in out
    code, stderr = follower.interrupt()
    assert (code, stderr) == (0, "")


async def test_follow_applies_the_filters_and_waits_for_a_log(
    make_proxy: MakeProxy, follow: type[Follower]
) -> None:
    follower = follow("--errors")
    await eventually(lambda: follower.errors, 10, what="the note that there is no log yet")
    proxy = await make_proxy(log_file=proxy_log_path())
    [fine] = await make_requests(proxy, 1)
    proxy.fake.enqueue(Reply.error(400, cf_error(5006, "bad input")))
    async with proxy.client() as client:
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    flush_log()
    failed = refused.value.request_id or ""
    await eventually(
        lambda: any(" 400 " in line for line in lines_with(follower.output(), failed)),
        10,
        what="the failed request's line",
    )
    out = follower.output()
    assert fine not in out
    assert all("WARN" in line or " 400 " in line for line in out.splitlines()), out
    code, stderr = follower.interrupt()
    assert code == 0
    assert stderr == f"no proxy log yet at {proxy_log_path()}; waiting for it (Ctrl-C to stop)\n"


async def test_follow_a_session_shows_its_warnings_before_the_line_that_names_it(
    make_proxy: MakeProxy, follow: type[Follower]
) -> None:
    proxy = await make_proxy(log_file=proxy_log_path(), max_retries=1)
    [unrelated] = await make_requests(proxy, 1)
    flush_log()
    follower = follow("--session", SESSION_A[:8])
    await eventually(lambda: follower.errors, 10, what="the note that the session is not seen yet")
    proxy.fake.enqueue(Reply.json(completion("b")))
    proxy.fake.enqueue(Reply.error(429, CAPACITY_ERROR), Reply.json(completion("a")))
    async with (
        proxy.client(default_headers={SESSION_HEADER: SESSION_B}) as other,
        proxy.client(default_headers={SESSION_HEADER: SESSION_A}) as client,
    ):
        of_b = await other.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
        of_a = await client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    flush_log()
    out = await follower.shows(" 200 ")
    assert set(re.findall(r"req_\w+", out)) == {of_a._request_id}
    [warning, line] = out.splitlines()
    assert "WARN  upstream answered 429" in warning and "2 attempts" in line
    assert unrelated not in out and of_b._request_id not in out
    code, stderr = follower.interrupt()
    assert code == 0
    assert stderr == (f"no request of session '{SESSION_A[:8]}' in the log yet; waiting for one\n")


# ---- no log, bad options, malformed lines --------------------------------------------------------


def test_no_log_yet_is_one_friendly_line() -> None:
    result = run_cli("logs")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == (
        f"no proxy log yet at {proxy_log_path()} (it is written by `cc-proxy run`)\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-n", "0"), "-n takes a number of requests, 1 or more (got '0')"),
        (("-n", "many"), "-n takes a number of requests, 1 or more (got 'many')"),
        (("--request", " "), "--request needs a request id (req_…, from the log or an error message)"),
        (("--session", ""), "--session needs a Claude Code session id (or the start of one)"),
    ],
)  # fmt: skip
def test_a_bad_option_is_one_line(args: tuple[str, ...], message: str) -> None:
    result = run_cli("logs", *args)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"cc-proxy: error: {message}\n"


GARBAGE = (
    b"\x00\xff\xfe not a record at all\n"
    b"2026-13-45 99:99:99,000 INFO cc_nemo.proxy.app: a header with an impossible time\n"
    b"2026-11-27 11:58:53,499 INFO cc_nemo.proxy.app: req_AAA POST /v1/messages status=abc\n"
    b"2026-11-27 11:58:53,500 INFO cc_nemo.proxy.app: req_BBB POST /v1/messages model= status=\n"
    b"2026-11-27 11:58:53,501 WARNING cc_nemo.proxy.app: req_CCC \x1b[31mred\x1b[0m \x07\n"
    b"  a continuation line\n"
    b"\n"
    b"2026-11-27 11:58:53,502 INFO cc_nemo.proxy.app: req_DDD POST /v1/messages session=x "
    b"model=claude-sonnet-5 upstream=workers-ai/@cf/nvidia/nemotron-3-120b-a12b status=2"
)


@pytest.mark.parametrize(
    "args", [(), ("--errors",), ("--request", "req_CCC"), ("--session", "x"), ("-n", "1")]
)
def test_malformed_lines_never_crash(args: tuple[str, ...]) -> None:
    path = proxy_log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(GARBAGE)
    path.with_name("proxy.log.1").write_bytes(b"\xff" * 100 + b"\n" + GARBAGE[:70])
    result = run_cli("logs", *args)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "\x1b" not in result.stdout
    if not args:
        # The escape sequence a log line quoted is shown as text, not sent to the terminal.
        assert "req_CCC" in result.stdout and "\\x1b[31mred\\x1b[0m \\x07" in result.stdout
        # The partial last line is shown as it stands.
        assert "req_DDD" in result.stdout


# ---- parsing and colour ------------------------------------------------------------------------


def test_request_fields_are_parsed_generally() -> None:
    fields = parse_request_fields(
        "model=m upstream=u status=200 stream=no in=1 out=2 cached=0 ttft_ms=- duration_ms=9 "
        "attempts=2 error=- reasoning=7 notes=tool_choice=required rejected; retried with auto; "
        "retried unseen after: upstream said retry_after=5 status=done session=abc"
    )
    assert fields["reasoning"] == "7"  # a key added later is carried
    # Inside a note, only a key the line has not had yet starts a new pair.
    assert fields["notes"] == (
        "tool_choice=required rejected; retried with auto; "
        "retried unseen after: upstream said retry_after=5 status=done"
    )
    assert fields["status"] == "200"
    assert fields["session"] == "abc"


def test_a_traceback_is_part_of_its_record() -> None:
    [record, after] = parse_records(
        [
            "2026-11-27 11:58:54,704 ERROR cc_nemo.proxy.app: req_X unhandled error",
            "Traceback (most recent call last):",
            '  File "x.py", line 1, in f',
            "ValueError: boom",
            "2026-11-27 11:58:54,706 INFO cc_nemo.proxy.app: proxy stopped: 1 request",
        ]
    )
    assert record.request_id == "req_X" and record.extra_lines[-1] == "ValueError: boom"
    assert after.message == "proxy stopped: 1 request"


def test_times_are_local_clock_times_under_a_line_naming_the_day() -> None:
    records = parse_records(
        [
            "2026-11-26 23:59:58,001 INFO cc_nemo.proxy.app: proxy starting: provider=cloudflare",
            "2026-11-27 00:00:01,002 WARNING cc_nemo.proxy.exchange: req_A upstream answered 429",
            "2026-11-27 00:00:02,003 INFO cc_nemo.proxy.app: proxy stopped: 1 request",
        ]
    )
    shown = [plain(line) for line in Renderer(today=date(2026, 11, 27)).render_all(records)]
    assert shown == [
        "── 2026-11-26 ──",
        "23:59:58  INFO  proxy starting: provider=cloudflare",
        "── 2026-11-27 ──",
        "00:00:01  WARN  upstream answered 429  req_A",
        "00:00:02  INFO  proxy stopped: 1 request",
    ]
    # Today's records need no day line.
    assert plain(next(Renderer(today=date(2026, 11, 26)).render_all(records))).startswith("23:")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_under_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    line = [("200", "green"), (" text", "")]
    monkeypatch.delenv("NO_COLOR", raising=False)
    terminal = Terminal()
    Output(terminal).write([line])
    assert terminal.getvalue() == "\x1b[32m200\x1b[0m text\n"
    piped = io.StringIO()
    Output(piped).write([line])
    assert piped.getvalue() == "200 text\n"
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = Terminal()
    Output(terminal).write([line])
    assert terminal.getvalue() == "200 text\n"


def test_a_known_secret_is_masked_on_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CF_AIG_TOKEN", "leaked-gateway-token-123")
    piped = io.StringIO()
    Output(piped).write([[("upstream said leaked-gateway-token-123", "")]])
    assert "leaked-gateway-token-123" not in piped.getvalue()
