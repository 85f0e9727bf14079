"""Calling the upstream for one exchange: retries within a budget, error replies mapped, bodies
read whole or chunk by chunk with the stream writer's commits and pings on time."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import aiohttp

from cc_nemo.proxy.bodies import clip_body, exact_json
from cc_nemo.proxy.record import ErrorMapper, Exchange
from cc_nemo.proxy.stream_writer import StreamWriter
from cc_nemo.proxy.upstream import (
    MAX_ERROR_BODY_BYTES,
    UpstreamClient,
    UpstreamConnectError,
    UpstreamReply,
    UpstreamTimeout,
    gateway_metadata,
    retry_delay,
)
from cc_nemo.settings.runtime import ProxySettings
from cc_nemo.translate.errors import (
    AnthropicError,
    ErrorReply,
    connect_error,
    timeout_error,
)

log = logging.getLogger("cc_nemo.proxy.exchange")

_OVERFLOW_PREFIXES = ("prompt is too long", "input length and `max_tokens`")
GATEWAY_CACHE_NOTE = "answered from the AI Gateway cache (cf-aig-cache-status: HIT)"
# An upstream 400 that names the tool choice: only then is a forced choice relaxed for good.
_ABOUT_TOOL_CHOICE = re.compile(r"tool[ _-]?choice", re.IGNORECASE)
# Task.uncancel (3.11+) lets a timer wake an upstream read directly; 3.10 waits on a task.
TIMED_READS = sys.version_info >= (3, 11)


class RetryBudget:
    """Proxy-side retries left for one model: shared by every phase of its attempts."""

    def __init__(self, retries: int) -> None:
        self.used = 0
        self.retries = retries

    @property
    def spent(self) -> bool:
        return self.used >= self.retries


class UpstreamCalls:
    """The upstream as one exchange uses it (one per proxy, shared by all requests)."""

    def __init__(
        self,
        settings: ProxySettings,
        upstream: UpstreamClient,
        *,
        forced_tool_choice_rejected: set[str],
    ) -> None:
        self.settings = settings
        self.upstream = upstream
        # AI Gateway reads `cf-aig-*` request headers: the configured ones, and each attempt's
        # metadata. Other upstreams get neither.
        self._ai_gateway = settings.provider.is_ai_gateway
        self._gateway_headers = settings.provider.gateway_headers
        # Upstream model ids that rejected tool_choice "required" (docs/wire.md, "Request
        # translation"): they get "auto" for the rest of the session.
        self.forced_tool_choice_rejected = forced_tool_choice_rejected

    def budget(self) -> RetryBudget:
        return RetryBudget(self.settings.max_retries)

    async def open(
        self,
        exchange: Exchange,
        body: dict[str, Any],
        headers: Mapping[str, str],
        error_for: ErrorMapper,
        budget: RetryBudget,
    ) -> UpstreamReply:
        """A 2xx upstream reply, retrying within `budget`; else ErrorReply."""
        tool_choice_relaxed = False
        encoded = exact_json(body)
        while True:
            if self.settings.log_bodies:
                log.info("%s upstream request: %s", exchange.request_id, clip_body(encoded))
            exchange.upstream_attempts += 1
            try:
                reply = await self.upstream.post(
                    encoded, headers=self._attempt_headers(exchange, headers)
                )
            except UpstreamConnectError as exc:
                error = connect_error(str(exc))
            except UpstreamTimeout as exc:
                error = timeout_error(str(exc))
            else:
                _note_gateway_reply(exchange, reply)
                if reply.ok:
                    return reply
                error, status = await self._read_error(reply, error_for)
                log.warning(
                    "%s upstream answered %d: %s%s",
                    exchange.request_id,
                    status,
                    error.message,
                    f" (gateway log {reply.gateway_log_id})" if reply.gateway_log_id else "",
                )
                if not tool_choice_relaxed and _rejects_forced_tool_choice(status, body, error):
                    # Some models crash on a forced tool choice: retry once with "auto" and
                    # keep doing so for this model.
                    tool_choice_relaxed = True
                    self.forced_tool_choice_rejected.add(exchange.upstream_model)
                    exchange.notes.append("tool_choice=required rejected; retried with auto")
                    body = {**body, "tool_choice": "auto"}
                    encoded = exact_json(body)
                    continue
            if error.retryable_upstream and await self.back_off(exchange, budget, error):
                continue
            raise ErrorReply(error)

    def _attempt_headers(self, exchange: Exchange, headers: Mapping[str, str]) -> Mapping[str, str]:
        """The request headers of one attempt; for AI Gateway with its `cf-aig-*` settings and
        the metadata naming this request and the model now answering (a fallback's own)."""
        if not self._ai_gateway:
            return headers
        metadata = gateway_metadata(
            request_id=exchange.request_id,
            claude_session=exchange.claude_session_id,
            model=exchange.spec.alias if exchange.spec else None,
        )
        return {**headers, **self._gateway_headers, "cf-aig-metadata": metadata}

    async def back_off(
        self, exchange: Exchange, budget: RetryBudget, error: AnthropicError
    ) -> bool:
        """Wait before a proxy-side retry; False when the budget is spent, or the upstream asked
        for a wait long enough that Claude Code's own retry loop should own it."""
        if budget.spent:
            return False
        delay = retry_delay(
            budget.used, base_delay=self.settings.retry_base_delay, retry_after=error.retry_after
        )
        if delay is None:
            return False
        budget.used += 1
        log.info(
            "%s retrying upstream in %.2f s (%s: %s)",
            exchange.request_id,
            delay,
            error.type,
            error.message,
        )
        await asyncio.sleep(delay)
        return True

    async def _read_error(
        self, reply: UpstreamReply, error_for: ErrorMapper
    ) -> tuple[AnthropicError, int]:
        try:
            raw = await reply.read(limit=MAX_ERROR_BODY_BYTES)
        except (UpstreamTimeout, aiohttp.ClientError, OSError):
            raw = b""
        finally:
            reply.close()
        return error_for(reply.status, raw, reply.retry_after), reply.status

    async def read_reply(self, reply: UpstreamReply, exchange: Exchange) -> bytes:
        """The whole reply body; ErrorReply for a timeout or a drop."""
        try:
            raw = await reply.read()
        except UpstreamTimeout as exc:
            raise ErrorReply(timeout_error(str(exc))) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ErrorReply(dropped_error(exc)) from None
        finally:
            reply.close()
        if self.settings.log_bodies:
            log.info("%s upstream reply: %s", exchange.request_id, clip_body(raw))
        return raw

    def chunks(
        self, reply: UpstreamReply, writer: StreamWriter, exchange: Exchange
    ) -> AsyncGenerator[bytes, None]:
        """Upstream body pieces as they come, with the writer's commits and pings on time;
        raises UpstreamTimeout past the first-byte or read budget; ends quietly on EOF or a
        drop (the translator then decides between a complete message and a truncation)."""
        reads = self._timed_reads if TIMED_READS else self._waited_reads
        return reads(reply, writer, exchange)

    async def _timed_reads(
        self, reply: UpstreamReply, writer: StreamWriter, exchange: Exchange
    ) -> AsyncGenerator[bytes, None]:
        """`chunks` with each read woken by a deadline (Python 3.11+): no task, no
        asyncio.wait and no timer of its own per read (bench/README.md, paced CPU). A read
        cut short by its deadline loses nothing: the bytes stay in the response's buffer."""
        settings = self.settings
        first_byte_deadline = exchange.started + settings.first_byte_timeout
        last_data: float | None = None
        alarm = _ReadAlarm()
        try:
            while True:
                if last_data is None:
                    deadline, budget = first_byte_deadline, settings.first_byte_timeout
                else:
                    deadline, budget = last_data + settings.read_timeout, settings.read_timeout
                try:
                    data = await alarm.read(reply, min(deadline, writer.next_wake))
                except _WakeUp:
                    if time.monotonic() >= deadline:
                        raise UpstreamTimeout("data", budget) from None
                    await writer.tick()
                    continue
                except (aiohttp.ClientError, OSError) as exc:
                    log.warning("%s upstream dropped mid-body: %s", exchange.request_id, exc)
                    exchange.notes.append("upstream dropped mid-body")
                    return
                if not data:
                    return
                last_data = time.monotonic()
                if exchange.first_byte_at is None:
                    exchange.first_byte_at = last_data
                # Data may flow while the translator holds it back (a tool block's stop and
                # later calls wait for the end): commit and ping on time all the same. Checked
                # here first: this runs for every read (bench/README.md, paced CPU).
                if last_data >= writer.next_wake:
                    await writer.tick()
                yield data
        finally:
            alarm.close()

    async def _waited_reads(
        self, reply: UpstreamReply, writer: StreamWriter, exchange: Exchange
    ) -> AsyncGenerator[bytes, None]:
        """`chunks` for Python 3.10 (no asyncio.timeout): each read a future, awaited with
        asyncio.wait until the next deadline, kept across wake-ups."""
        settings = self.settings
        first_byte_deadline = exchange.started + settings.first_byte_timeout
        last_data: float | None = None
        pending: asyncio.Future[bytes] | None = None
        try:
            while True:
                if pending is None:
                    pending = reply.next_chunk()
                if last_data is None:
                    deadline, budget = first_byte_deadline, settings.first_byte_timeout
                else:
                    deadline, budget = last_data + settings.read_timeout, settings.read_timeout
                wake = min(deadline, writer.next_wake)
                done, _ = await asyncio.wait({pending}, timeout=max(wake - time.monotonic(), 0))
                if not done:
                    if time.monotonic() >= deadline:
                        raise UpstreamTimeout("data", budget)
                    await writer.tick()
                    continue
                try:
                    data = pending.result()
                except (aiohttp.ClientError, OSError) as exc:
                    log.warning("%s upstream dropped mid-body: %s", exchange.request_id, exc)
                    exchange.notes.append("upstream dropped mid-body")
                    return
                pending = None
                if not data:
                    return
                exchange.mark_first_byte()
                last_data = time.monotonic()
                await writer.tick()
                yield data
        finally:
            await discard(pending)


class _WakeUp(Exception):
    """A read's deadline came before any data."""


class _ReadAlarm:
    """Wakes the task reading an upstream body when the read's deadline passes, with one timer
    per body instead of one per read.

    The deadline moves later with every chunk (the read timeout and the ping interval count
    from the last data and the last write), so the timer is left where it is while the
    deadline only moves later, and re-armed when it fires early: about once per ping interval
    while data flows. A timer per read (asyncio.timeout) cost a TimerHandle, a heap push and a
    cancelled handle in the loop's heap for every chunk. Python 3.11+ (Task.uncancel)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # time.monotonic() the timer fires at
        self._deadline = 0.0
        self._reading = False
        self._rang = False

    async def read(self, reply: UpstreamReply, deadline: float) -> bytes:
        """The next piece of the body (b"" at its end); _WakeUp once `deadline`
        (time.monotonic()) has passed without any."""
        self._deadline = deadline
        if self._timer is None or self._timer_at > deadline:
            self._arm(deadline)
        cancelling = self._task.cancelling()  # type: ignore[attr-defined]
        self._reading = True
        try:
            return await reply.read_chunk()
        except asyncio.CancelledError:
            if not self._rang:
                raise
            self._rang = False
            if self._task.uncancel() > cancelling:  # type: ignore[attr-defined]
                raise  # cancelled from outside as well: that one wins
            raise _WakeUp from None
        finally:
            self._reading = False

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        # Relative: the loop's clock need not be time.monotonic (uvloop's is its own).
        delay = max(deadline - time.monotonic(), 0.0)
        self._timer = self._loop.call_later(delay, self._ring)

    def _ring(self) -> None:
        self._timer = None
        if not self._reading:
            return  # the next read arms it again
        if time.monotonic() < self._deadline:
            self._arm(self._deadline)  # the deadline moved on since the timer was set
            return
        self._rang = True
        self._task.cancel()


def _note_gateway_reply(exchange: Exchange, reply: UpstreamReply) -> None:
    """Keep AI Gateway's log id of the latest answer (so the answering attempt's, a fallback's
    included) and say when its cache answered."""
    if (log_id := reply.gateway_log_id) is not None:
        exchange.gateway_log_id = log_id
    if reply.ok and reply.gateway_cache_hit and GATEWAY_CACHE_NOTE not in exchange.notes:
        exchange.notes.append(GATEWAY_CACHE_NOTE)


def _rejects_forced_tool_choice(
    status: int, body: Mapping[str, Any], error: AnthropicError
) -> bool:
    return (
        status in (400, 422)
        and body.get("tool_choice") == "required"
        and bool(_ABOUT_TOOL_CHOICE.search(error.message))
        and not error.message.startswith(_OVERFLOW_PREFIXES)
    )


def dropped_error(exc: BaseException) -> AnthropicError:
    return AnthropicError(
        500, "api_error", f"the upstream connection dropped while answering: {type(exc).__name__}"
    )


async def discard(future: asyncio.Future[Any] | None) -> None:
    """Cancel a helper future if still running and consume its outcome (no stray warnings)."""
    if future is None:
        return
    if not future.done():
        future.cancel()
        # wait() never raises the future's own exception; our own cancellation still propagates.
        await asyncio.wait({future})
    if not future.cancelled():
        future.exception()
