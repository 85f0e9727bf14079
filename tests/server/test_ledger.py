"""The usage ledger as the proxy writes it: one row per /v1/messages request, with the right
fields, no prompt and no secret; written off the event loop; and a ledger that cannot be
written never costs a request."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import anthropic
import pytest

from cc_nemo.ledger.schema import connect
from cc_nemo.ledger.summary import stored_summary
from tests.fake_upstream import CAPACITY_ERROR, Reply, completion, text_stream
from tests.fixtures import (
    CLOUDFLARE_TOKEN,
    GATEWAY_TOKEN,
    SESSION_TOKEN,
    MakeProxy,
    ProxyUnderTest,
)
from tests.ledger.records import approx_cost
from tests.waiting import eventually

PROMPT_MARKER = "zebra-marmalade-4471"
CLAUDE_SESSION = "5f0c2a9e-8d1b-4c3e-9f7a-1b2c3d4e5f60"
MODEL = "claude-sonnet-5"
# How long another connection holds the ledger's write lock in the event-loop test.
LOCK_HELD_S = 2.0
# A request answered while the lock is held must not wait for it (it waited 2 s if it did).
PROMPT_ANSWER_S = 0.5


def messages(text: str = f"tell me about {PROMPT_MARKER}") -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def ledger_rows(path: Path) -> list[dict[str, Any]]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in connection.execute("SELECT * FROM requests ORDER BY id")]
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        connection.close()


async def rows_landed(proxy: ProxyUnderTest, count: int) -> list[dict[str, Any]]:
    """The ledger's rows once `count` of them are there (a background thread writes them)."""

    def landed() -> list[dict[str, Any]] | None:
        rows = ledger_rows(proxy.ledger.path)
        assert len(rows) <= count, rows
        return rows if len(rows) == count else None

    return await eventually(landed, 10, what=f"{count} rows in the ledger")


def with_reasoning_tokens(chunks: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The stream with OpenAI's reasoning-token count in its final usage."""
    chunks[-1]["usage"]["completion_tokens_details"] = {"reasoning_tokens": count}
    return chunks


async def test_a_row_per_request_streamed_whole_failed_and_abandoned(
    make_proxy: MakeProxy, tmp_path: Path
) -> None:
    proxy = await make_proxy(log_file=tmp_path / "proxy.log")
    proxy.fake.enqueue(
        Reply.stream(with_reasoning_tokens(text_stream("streamed", reasoning="hmm",
                                                       prompt_tokens=33, cached_tokens=8), 3)),
        Reply.json(completion("whole", prompt_tokens=44, completion_tokens=9)),
        *[Reply.error(429, CAPACITY_ERROR)] * 3,
        Reply.hang(30),
    )  # fmt: skip
    started = time.time()
    client = proxy.client(default_headers={"x-claude-code-session-id": CLAUDE_SESSION})
    async with client:
        async with client.messages.stream(model=MODEL, max_tokens=50, messages=messages()) as s:
            await s.get_final_message()
        await client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=messages())
        with pytest.raises(anthropic.OverloadedError):
            await client.messages.create(model=MODEL, max_tokens=50, messages=messages())
        abandoned = asyncio.ensure_future(
            client.messages.create(model=MODEL, max_tokens=50, messages=messages())
        )
        assert await proxy.fake.wait_for(lambda f: len(f.requests) == 6, timeout=5)
        abandoned.cancel()
        await asyncio.gather(abandoned, return_exceptions=True)

    streamed, whole, failed, gone = await rows_landed(proxy, 4)
    assert {row["proxy_session"] for row in (streamed, whole, failed, gone)} == {
        proxy.ledger.session_id
    }
    assert len(proxy.ledger.session_id) == 32
    assert {row["claude_session"] for row in (streamed, whole, failed, gone)} == {CLAUDE_SESSION}
    assert all(started <= row["ts"] <= time.time() for row in (streamed, whole, failed, gone))
    assert [row["request_id"] for row in (streamed, whole, failed, gone)] == [
        record.request_id for record in proxy.ledger.records
    ]
    assert streamed | {"id": 0, "ts": 0, "request_id": "", "ttft_ms": 0, "duration_ms": 0} == {
        "id": 0,
        "ts": 0,
        "proxy_session": proxy.ledger.session_id,
        "claude_session": CLAUDE_SESSION,
        "request_id": "",
        "model": MODEL,
        "upstream_model": "workers-ai/@cf/nvidia/nemotron-3-120b-a12b",
        "answered_by": None,
        "fallback_from": None,
        "stream": 1,
        "status": 200,
        "error_type": None,
        "attempts": 1,
        "input_tokens": 33 - 8,
        "cache_read_tokens": 8,
        "output_tokens": 7,
        "reasoning_tokens": 3,
        "cost_usd": pytest.approx(proxy.settings.main_model.cost_usd(25, 7, 8)),
        "ttft_ms": 0,
        "duration_ms": 0,
        "gateway_log_id": None,
    }
    assert 0 < streamed["ttft_ms"] <= streamed["duration_ms"]
    assert (whole["stream"], whole["model"], whole["upstream_model"]) == (
        0,
        "claude-haiku-4-5",
        "workers-ai/@cf/openai/gpt-oss-20b",
    )
    assert (whole["input_tokens"], whole["output_tokens"]) == (44, 9)
    assert whole["cost_usd"] > 0
    assert (failed["status"], failed["error_type"], failed["attempts"]) == (
        529,
        "overloaded_error",
        3,
    )
    assert (failed["output_tokens"], failed["cost_usd"]) == (0, 0.0)
    assert (gone["status"], gone["error_type"]) == (499, "client_closed")

    # Nothing of the prompt and no secret, in the database or its write-ahead log.
    await proxy.running.stop()
    files = [p for p in proxy.ledger.path.parent.iterdir() if p.name.startswith("usage.sqlite3")]
    raw = b"".join(p.read_bytes() for p in files)
    assert CLAUDE_SESSION.encode() in raw  # the check below would see text if it were there
    for secret in (PROMPT_MARKER, SESSION_TOKEN, GATEWAY_TOKEN, CLOUDFLARE_TOKEN):
        assert secret.encode() not in raw, secret
    log = (tmp_path / "proxy.log").read_text()
    assert f"session={CLAUDE_SESSION} model=claude-haiku-4-5" in log


async def test_the_claude_session_header_is_clipped_and_kept_to_id_characters(
    proxy: ProxyUnderTest, tmp_path: Path
) -> None:
    hostile = "abc def=1\tx" + "y" * 1000
    async with proxy.client(default_headers={"x-claude-code-session-id": hostile}) as client:
        await client.messages.create(model=MODEL, max_tokens=50, messages=messages())
    async with proxy.client() as client:
        await client.messages.create(model=MODEL, max_tokens=50, messages=messages())
    first, second = await rows_landed(proxy, 2)
    assert first["claude_session"] == ("abc_def_1_x" + "y" * 1000)[:128]
    assert second["claude_session"] is None
    await proxy.running.stop()
    log = (tmp_path / "proxy.log").read_text()
    assert f"session={first['claude_session']} model=" in log
    assert "session=- model=" in log


async def test_requests_turned_away_are_logged_but_not_usage(proxy: ProxyUnderTest) -> None:
    async with proxy.client(auth_token="not-the-session-token") as client:
        with pytest.raises(anthropic.AuthenticationError):
            await client.messages.create(model=MODEL, max_tokens=50, messages=messages())
    async with proxy.client() as client:
        await client.messages.create(model=MODEL, max_tokens=50, messages=messages())
    [row] = await rows_landed(proxy, 1)
    assert row["status"] == 200
    assert len(proxy.ledger.records) == 1


async def test_each_proxy_start_is_its_own_session(make_proxy: MakeProxy) -> None:
    first, second = await make_proxy(), await make_proxy()
    for proxy in (first, second, first):
        async with proxy.client() as client:
            await client.messages.create(model=MODEL, max_tokens=50, messages=messages("hi"))
    await first.running.stop()
    await second.running.stop()

    assert first.ledger.path == second.ledger.path
    rows = ledger_rows(first.ledger.path)
    sessions = [row["proxy_session"] for row in rows]
    assert sorted(sessions) == sorted([first.ledger.session_id] * 2 + [second.ledger.session_id])
    assert first.ledger.session_id != second.ledger.session_id
    assert first.ledger.final_summary().requests == 2
    assert second.ledger.final_summary().requests == 1


async def test_the_exit_summary_is_read_back_from_the_ledger(make_proxy: MakeProxy) -> None:
    proxy = await make_proxy()
    proxy.fake.enqueue(
        Reply.stream(text_stream("one", prompt_tokens=1200, cached_tokens=1000)),
        *[Reply.error(429, CAPACITY_ERROR)] * 3,
    )
    async with proxy.client() as client:
        await client.messages.create(model=MODEL, max_tokens=50, messages=messages(), stream=False)
        with pytest.raises(anthropic.OverloadedError):
            await client.messages.create(model=MODEL, max_tokens=50, messages=messages())
        await client.messages.create(model=MODEL, max_tokens=50, messages=messages())
    await proxy.running.stop()

    connection = connect(proxy.ledger.path, create=False)
    assert connection is not None
    from_rows = stored_summary(connection, proxy.ledger.session_id)
    connection.close()
    summary = proxy.ledger.final_summary()
    assert summary == from_rows
    assert (summary.requests, summary.errors, summary.cache_read_tokens) == (3, 1, 1000)
    assert summary.render().startswith("cc-proxy: 3 requests, 1 failed; ")
    assert summary == approx_cost(proxy.ledger.summary())  # the totals in memory agree


async def test_a_locked_ledger_never_holds_up_a_request(make_proxy: MakeProxy) -> None:
    proxy = await make_proxy()
    async with proxy.client() as client:
        await client.messages.create(model=MODEL, max_tokens=50, messages=messages("warm up"))
        await rows_landed(proxy, 1)  # the writer has its connection and the table exists

        holder = connect(proxy.ledger.path)
        assert holder is not None
        holder.isolation_level = None
        holder.execute("BEGIN IMMEDIATE")  # another process's write, for LOCK_HELD_S
        locked_at = time.monotonic()
        lag = LoopLag()
        lag.start()
        latencies = []
        try:
            for n in range(5):
                sent = time.monotonic()
                await client.messages.create(
                    model=MODEL, max_tokens=50, messages=messages(f"while locked {n}")
                )
                latencies.append(time.monotonic() - sent)
            await asyncio.sleep(max(0.0, LOCK_HELD_S - (time.monotonic() - locked_at)))
            rows_while_locked = len(ledger_rows(proxy.ledger.path))
        finally:
            holder.execute("COMMIT")
            holder.close()
            worst_lag = await lag.stop()

    assert rows_while_locked == 1  # the writer really was waiting for the lock
    assert max(latencies) < PROMPT_ANSWER_S, latencies
    assert worst_lag < PROMPT_ANSWER_S, worst_lag
    rows = await rows_landed(proxy, 6)
    assert [row["status"] for row in rows] == [200] * 6
    print(f"latency max {max(latencies) * 1000:.0f} ms, loop lag max {worst_lag * 1000:.0f} ms")


class LoopLag:
    """The worst delay of a 10 ms timer on the running loop (what any blocking call shows as)."""

    TICK_S = 0.01

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.TICK_S)
            self.worst = max(self.worst, time.monotonic() - before - self.TICK_S)

    async def stop(self) -> float:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.worst


@pytest.mark.parametrize("kind", ["parent-is-a-file", "not-a-database"])
async def test_an_unwritable_ledger_costs_one_warning_not_a_request(
    make_proxy: MakeProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    if kind == "parent-is-a-file":
        (tmp_path / "blocker").write_text("a file where the ledger's directory should be")
        path = tmp_path / "blocker" / "usage.sqlite3"
    else:
        path = tmp_path / "usage.sqlite3"
        path.write_bytes(b"not SQLite at all " * 512)
    monkeypatch.setenv("CC_PROXY_LEDGER", str(path))
    log_file = tmp_path / "proxy.log"
    proxy = await make_proxy(log_file=log_file)
    proxy.fake.enqueue(*[Reply.error(429, CAPACITY_ERROR)] * 3)
    async with proxy.client() as client:
        with pytest.raises(anthropic.OverloadedError):
            await client.messages.create(model=MODEL, max_tokens=50, messages=messages())
        replies = [
            await client.messages.create(model=MODEL, max_tokens=50, messages=messages(f"q{n}"))
            for n in range(3)
        ]
    await proxy.running.stop()

    assert [reply.content[0].type for reply in replies] == ["text"] * 3
    assert proxy.ledger.path == path
    assert proxy.ledger.failure
    summary = proxy.ledger.final_summary()
    assert (summary.requests, summary.errors) == (4, 1)
    assert summary.output_tokens == sum(reply.usage.output_tokens for reply in replies)
    warnings = [
        line for line in log_file.read_text().splitlines() if "WARNING cc_nemo.ledger" in line
    ]
    assert len(warnings) == 1, warnings
    assert "usage ledger" in warnings[0] and "kept in memory only" in warnings[0]
