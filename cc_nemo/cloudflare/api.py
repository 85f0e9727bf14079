"""One-shot HTTP calls the CLI makes (login check, model listing) and Cloudflare error parsing.

The proxy's own upstream traffic lives in `upstream.py`; this module serves short
command-line requests, so it opens a session per call and reads small bodies only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cc_nemo.errors import UserError
from cc_nemo.translate.cloudflare_errors import parse_error_envelope

DEFAULT_CF_API_BASE = "https://api.cloudflare.com/client/v4"
ENV_CF_API_BASE = "CC_PROXY_CF_API_BASE"
_MAX_BODY = 4 * 1024 * 1024


def cf_api_base() -> str:
    """The Cloudflare REST API base; overridable so tests can use a loopback server."""
    return (os.environ.get(ENV_CF_API_BASE, "").strip() or DEFAULT_CF_API_BASE).rstrip("/")


@dataclass(frozen=True)
class Reply:
    """Status and decoded body of one HTTP exchange."""

    status: int
    body: Any  # parsed JSON, or the text when the body is not JSON
    error_codes: tuple[int, ...]
    error_message: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def error_details(body: Any) -> tuple[tuple[int, ...], str]:
    """Codes and first message from any Cloudflare/OpenAI/Anthropic error body shape."""
    envelope = parse_error_envelope(body)
    return envelope.codes, envelope.message


async def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    json_body: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Reply:
    """Send one request; connection problems become a UserError that names the host."""
    import asyncio

    import aiohttp
    import orjson

    data = orjson.dumps(json_body) if json_body is not None else None
    send_headers = dict(headers)
    if data is not None:
        send_headers["Content-Type"] = "application/json"
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    host = urlsplit(url).netloc
    try:
        async with (
            aiohttp.ClientSession(timeout=client_timeout, trust_env=True) as session,
            session.request(method, url, headers=send_headers, data=data, params=params) as resp,
        ):
            raw = await resp.content.read(_MAX_BODY)
            status = resp.status
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise UserError(f"no answer from {host} within {timeout:g} s; try again later") from exc
    except aiohttp.ClientError as exc:
        reason = type(exc).__name__
        if isinstance(exc, aiohttp.ClientConnectorError):
            reason = str(exc.os_error.strerror or exc.os_error) if exc.os_error else reason
        raise UserError(f"cannot reach {host} ({reason}); check the URL and your network") from exc
    text = raw.decode("utf-8", errors="replace")
    try:
        body: Any = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = text
    codes, message = error_details(body) if status >= 400 else ((), "")
    return Reply(status, body, codes, message)


def one_line(text: str, limit: int = 200) -> str:
    """Squash an upstream message onto one short line."""
    squashed = " ".join(text.split())
    return squashed if len(squashed) <= limit else squashed[: limit - 1] + "…"
