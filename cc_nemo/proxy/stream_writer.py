"""The SSE side of a streamed answer: when to commit the 200, pings, events, the error event.

The commit rule (docs/architecture.md, "The commit rule"): the HTTP status is the one error
signal Claude Code retries in every case, so nothing is sent until there is something to say:
the first content event, or the hold deadline (then `message_start` and `ping`s keep its idle
watchdogs fed). Before the commit a failure is a plain HTTP error; after it, an SSE `error`
event whose type says whether Claude Code should retry the turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from cc_nemo.proxy.record import Exchange
from cc_nemo.settings.runtime import ProxySettings
from cc_nemo.translate.errors import AnthropicError, ErrorReply, as_stream_error
from cc_nemo.translate.sse import encode_event

log = logging.getLogger("cc_nemo.proxy.exchange")
T = TypeVar("T")
# A floor under ping_interval, so a zero or negative setting can't become a busy loop.
MIN_PING_INTERVAL = 0.05
# Events that tell the client nothing about the answer: a retry may still follow them unseen.
_SILENT_EVENTS = frozenset({"message_start", "ping"})


def writer_for(
    request: web.Request, exchange: Exchange, settings: ProxySettings, *, hold: bool
) -> StreamWriter:
    """The writer of one exchange's answer: it holds the status line until commit_timeout
    (`hold`), or commits at the first write; errors it sends are recorded on the exchange."""

    def record_error(error_type: str) -> None:
        exchange.error_type = error_type

    return StreamWriter(
        request,
        hold_until=exchange.started + (settings.commit_timeout if hold else 0.0),
        ping_interval=settings.ping_interval,
        on_error=record_error,
    )


def is_claude_code(request: web.Request) -> bool:
    """Whether the client is Claude Code (it sends `x-app: cli` and a claude-cli agent)."""
    return request.headers.get("x-app") == "cli" or request.headers.get(
        "User-Agent", ""
    ).startswith("claude-cli/")


class StreamWriter:
    """Writes one SSE answer: holds the status line until the commit, pings during silence,
    and remembers whether any content reached the client (after that, no invisible retry)."""

    def __init__(
        self,
        request: web.Request,
        *,
        hold_until: float,
        ping_interval: float,
        on_error: Callable[[str], None] = lambda error_type: None,
    ) -> None:
        self._request = request
        self._on_error = on_error
        self.hold_until = hold_until
        self.ping_interval = max(ping_interval, MIN_PING_INTERVAL)
        self.response: web.StreamResponse | None = None
        self.content_sent = False
        self.last_write = time.monotonic()
        self._opening: dict[str, Any] | None = None
        self._started = False
        # Claude Code retries a turn cut short after content, not an error event (see fail).
        self.cut_short_to_retry = is_claude_code(request)
        self.cut_short = False

    @property
    def committed(self) -> bool:
        return self.response is not None

    @property
    def next_wake(self) -> float:
        """When the writer next has something to do on its own: commit, or ping."""
        if not self.committed:
            return self.hold_until
        return self.last_write + self.ping_interval

    def set_opening(self, message_start: dict[str, Any]) -> None:
        """The `message_start` to send at the commit (each attempt's translator makes one)."""
        self._opening = message_start

    async def commit(self, then: bytes = b"") -> web.StreamResponse:
        """200 and SSE headers now, then `message_start` if there is one, then `then`: one
        write (one syscall on the way to the first token) when committing."""
        if self.response is None:
            response = web.StreamResponse(
                status=200,
                headers={
                    "Content-Type": "text/event-stream; charset=utf-8",
                    "Cache-Control": "no-cache",
                    # Unbuffered: Claude Code's watchdogs count bytes.
                    "X-Accel-Buffering": "no",
                },
            )
            await response.prepare(self._request)
            self.response = response
            if self._opening is not None:
                self._started = True
                then = encode_event(self._opening) + then
        if then:
            await self._write(then)
        return self.response

    async def send(self, events: list[dict[str, Any]]) -> None:
        """Translated events; `message_start` only once, whichever attempt made it."""
        # One pass per batch: this runs for every upstream read (bench/README.md, paced CPU).
        started = self._started
        encoded: list[bytes] = []
        for event in events:
            kind = event.get("type")
            if kind == "message_start":
                if started:
                    continue
                self._started = True
            elif kind not in _SILENT_EVENTS:
                self.content_sent = True
                if kind == "error":
                    self._on_error(str(event.get("error", {}).get("type", "api_error")))
            encoded.append(encode_event(event))
        if not encoded:
            return
        if self.response is None:
            await self.commit(b"".join(encoded))
        else:  # committed, the usual case: one write, no commit layers on the way
            await self.response.write(b"".join(encoded))
            self.last_write = time.monotonic()

    async def send_raw(self, data: bytes) -> None:
        """Bytes already in SSE form (pass-through)."""
        await self.commit()
        self.content_sent = True
        await self._write(data)

    async def fail(self, error: AnthropicError) -> None:
        """A failure the proxy will not retry: a plain HTTP error while nothing is committed
        (raised as ErrorReply), else one `error` event that Claude Code retries if transient.

        Except after content, for Claude Code: it re-sends a turn whose stream ends early but
        gives up on an error event once content has arrived (measured with 2.1.332), so a
        transient failure there ends the body without `message_stop` instead."""
        if not self.committed:
            raise ErrorReply(error)
        error = as_stream_error(error)
        if self.content_sent and self.cut_short_to_retry and error.type == "overloaded_error":
            self._on_error(error.type)
            self.cut_short = True
            return
        await self.send([error.event()])

    async def tick(self) -> None:
        """Do what is due now: commit at the hold deadline, ping after a silence."""
        now = time.monotonic()
        if not self.committed:
            if now >= self.hold_until:
                await self.commit()
        elif now >= self.last_write + self.ping_interval:
            await self._write(encode_event({"type": "ping"}))

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable` in this task, committing and pinging on time meanwhile.

        A timer starts a keeper task only if a commit or a ping comes due first: the hold is
        minutes long and an upstream usually answers within a second, so most requests pay a
        timer instead of a task and an asyncio.wait, and the answer reaches this task without
        an extra loop turn (bench/README.md). The keeper finishes the write it is in before
        this returns, so the two never write at once."""
        loop = asyncio.get_running_loop()
        keeper: asyncio.Task[None] | None = None
        stop = asyncio.Event()

        def start_keeper() -> None:
            nonlocal keeper
            keeper = loop.create_task(self._keep(stop))

        timer = loop.call_later(max(self.next_wake - time.monotonic(), 0.0), start_keeper)
        try:
            return await awaitable
        finally:
            timer.cancel()
            if keeper is not None:
                stop.set()
                await asyncio.wait({keeper})

    async def _keep(self, stop: asyncio.Event) -> None:
        """Commit and ping on time until `stop` is set. A write that fails ends it: the client
        left, so aiohttp cancels the handler, and otherwise this task's own next write fails
        the same way (what `wait` returned is then still closed by its owner)."""
        try:
            while not stop.is_set():
                await self.tick()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(self.next_wake - time.monotonic(), 0.0))
        except ConnectionResetError:
            pass
        except Exception:
            log.exception("keeping the stream alive failed")

    async def _write(self, data: bytes) -> None:
        assert self.response is not None
        await self.response.write(data)
        self.last_write = time.monotonic()
