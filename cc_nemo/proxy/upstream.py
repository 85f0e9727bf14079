"""Talking to the upstream HTTP endpoint: one POST, its timeouts, its cancellation.

Knows nothing of Anthropic or OpenAI shapes: bytes go out, a status, headers and a body
(whole or chunk by chunk) come back. The retry policy's arithmetic lives here too; which
failures are worth retrying is decided by the caller (it needs the error mapping).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import sys
import time
from collections.abc import Awaitable, Coroutine, Mapping
from typing import Any, TypeVar

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from cc_nemo import __version__

USER_AGENT = f"cc-proxy/{__version__}"
# A retry-after longer than this is left to Claude Code's own retry loop (it honours it).
MAX_HONOURED_RETRY_AFTER = 5.0
# Error bodies are small; cap what we read of them so a broken upstream can't stall us.
MAX_ERROR_BODY_BYTES = 256 * 1024
# Pool size: Claude Code runs subagents in parallel; more than this queue for a slot.
MAX_CONNECTIONS = 100
# AI Gateway's answer headers: its log entry for the request, and whether its cache answered.
GATEWAY_LOG_ID_HEADER = "cf-aig-log-id"
GATEWAY_CACHE_STATUS_HEADER = "cf-aig-cache-status"
# A log id is a short token (a ULID); anything else is not one and is not kept (it goes to the
# ledger and the log line).
_GATEWAY_LOG_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
GATEWAY_CLIENT_NAME = "cc-proxy"
_HAS_TIMEOUT = sys.version_info >= (3, 11)
T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """`awaitable`, or asyncio.TimeoutError after `seconds`. In the calling task on Python
    3.11+ (asyncio.timeout); asyncio.wait_for there wraps it in a task of its own, an extra
    task and loop turn per request (and per read of a whole body)."""
    if _HAS_TIMEOUT:
        async with asyncio.timeout(seconds):  # type: ignore[attr-defined]
            return await awaitable
    return await asyncio.wait_for(awaitable, timeout=seconds)


class UpstreamConnectError(Exception):
    """The upstream could not be reached (DNS, refused, TLS, reset before an answer)."""


class UpstreamTimeout(Exception):
    """The upstream stayed silent longer than allowed."""

    def __init__(self, phase: str, seconds: float) -> None:
        super().__init__(f"no {phase} from the upstream within {seconds:g} s")
        self.phase = phase
        self.seconds = seconds


def create_session(*, connect_timeout: float) -> aiohttp.ClientSession:
    """The one client session a proxy uses for its whole life.

    Only the socket connect is bounded here; first-byte and read silences are bounded per
    call, because a reasoning model may legitimately think for minutes."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=connect_timeout),
        connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
        # HTTPS_PROXY/NO_PROXY are honoured, but read once per UpstreamClient (env_proxy_for):
        # trust_env=True would look them and ~/.netrc up in a worker thread on every request,
        # ~0.6 ms of CPU and ~1 ms of latency each (bench/README.md).
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


def env_proxy_for(url: str) -> tuple[str | None, aiohttp.BasicAuth | None]:
    """The HTTP(S)_PROXY the environment sets for `url` (NO_PROXY honoured), like other
    developer tools; (None, None) when requests go direct."""
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        proxy, auth = get_env_proxy_for_url(URL(url))
    except (LookupError, ValueError):
        return None, None
    return str(proxy), auth


class UpstreamReply:
    """An upstream response whose status and headers have arrived; the body is read on demand."""

    def __init__(self, response: aiohttp.ClientResponse, *, read_timeout: float) -> None:
        self._response = response
        self._read_timeout = read_timeout

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def ok(self) -> bool:
        return 200 <= self._response.status < 300

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self._response.headers

    @property
    def content_type(self) -> str:
        return self._response.content_type.lower()

    @property
    def is_event_stream(self) -> bool:
        return self.content_type == "text/event-stream"

    @property
    def retry_after(self) -> str | None:
        return self._response.headers.get("retry-after")

    @property
    def gateway_log_id(self) -> str | None:
        """AI Gateway's id for this request in its logs (`cf-aig-log-id`), if it sent one."""
        value = self._response.headers.get(GATEWAY_LOG_ID_HEADER, "").strip()
        return value if _GATEWAY_LOG_ID.fullmatch(value) else None

    @property
    def gateway_cache_hit(self) -> bool:
        """AI Gateway answered from its cache (`cf-aig-cache-status: HIT`)."""
        return self._response.headers.get(GATEWAY_CACHE_STATUS_HEADER, "").upper() == "HIT"

    def read_chunk(self) -> Coroutine[Any, Any, bytes]:
        """The next piece of body as soon as any arrives (b"" at the end), for a caller that
        bounds the wait itself; cancelling it loses nothing (the bytes stay buffered).
        Raises aiohttp.ClientPayloadError when the upstream drops mid-body."""
        return self._response.content.readany()

    def next_chunk(self) -> asyncio.Future[bytes]:
        """The next piece of body as soon as any arrives (b"" at the end).

        A future, not a timed read: the caller waits on it with its own deadline and sends
        pings meanwhile. Raises aiohttp.ClientPayloadError when the upstream drops mid-body."""
        return asyncio.ensure_future(self._response.content.readany())

    async def read(self, limit: int | None = None) -> bytes:
        """The whole (remaining) body, each read bounded by the read timeout; `limit` truncates."""
        parts: list[bytes] = []
        size = 0
        while True:
            try:
                chunk = await within(self._response.content.readany(), self._read_timeout)
            except asyncio.TimeoutError:
                raise UpstreamTimeout("data", self._read_timeout) from None
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
            if limit is not None and size >= limit:
                break
        body = b"".join(parts)
        return body if limit is None else body[:limit]

    def close(self) -> None:
        """Drop the connection (an unfinished body can't go back to the pool)."""
        self._response.close()


class UpstreamClient:
    """POSTs to one upstream URL with fixed provider headers."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        url: str,
        headers: Mapping[str, str],
        first_byte_timeout: float,
        read_timeout: float,
    ) -> None:
        self._session = session
        self.url = url
        self._headers = dict(headers)
        self.first_byte_timeout = first_byte_timeout
        self.read_timeout = read_timeout
        self._proxy, self._proxy_auth = env_proxy_for(url)

    async def post(self, body: bytes, *, headers: Mapping[str, str]) -> UpstreamReply:
        """Send one request and wait (at most first_byte_timeout) for the status line and headers.

        Cancelling the caller cancels the request and closes its connection."""
        merged = {**headers, **self._headers}
        try:
            response = await within(
                self._session.post(
                    self.url,
                    data=body,
                    headers=merged,
                    allow_redirects=False,
                    proxy=self._proxy,
                    proxy_auth=self._proxy_auth,
                ),
                self.first_byte_timeout,
            )
        except asyncio.TimeoutError:
            raise UpstreamTimeout("response", self.first_byte_timeout) from None
        except aiohttp.InvalidURL as exc:
            raise UpstreamConnectError(f"invalid upstream URL: {exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamConnectError(_describe_connect_error(exc)) from None
        return UpstreamReply(response, read_timeout=self.read_timeout)


def gateway_metadata(*, request_id: str, claude_session: str | None, model: str | None) -> str:
    """`cf-aig-metadata` for one upstream attempt: what lines AI Gateway's log entry up with
    cc-proxy's log line and ledger record. The gateway keeps at most 5 entries of strings,
    numbers or booleans; these are 4 strings, never a secret (docs/wire.md, "Endpoints and
    headers"). ASCII JSON, so any value is a valid header: orjson's (a tenth of json.dumps's
    cost, once per attempt) unless a value is not ASCII, which only json escapes."""
    entries = {"client": GATEWAY_CLIENT_NAME, "request_id": request_id}
    if claude_session:
        entries["claude_session"] = claude_session
    if model:
        entries["model"] = model
    encoded = orjson.dumps(entries).decode()
    if encoded.isascii():
        return encoded
    return json.dumps(entries, separators=(",", ":"))


def _describe_connect_error(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the upstream closed the connection before answering"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `retry-after` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def retry_delay(attempt: int, *, base_delay: float, retry_after: str | None) -> float | None:
    """Seconds to wait before proxy-side retry number `attempt` (0-based), or None when the
    upstream asked for a wait long enough that Claude Code's own retry loop should own it."""
    backoff = base_delay * (2**attempt)
    asked = parse_retry_after(retry_after)
    if asked is None:
        return backoff
    if asked > MAX_HONOURED_RETRY_AFTER:
        return None
    return max(backoff, asked)
