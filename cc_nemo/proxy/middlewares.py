"""The one middleware every request passes: request id, the loopback Host guard and the
session token check, Anthropic-shaped errors (never a traceback), the log line and the ledger
record."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError

from cc_nemo.ledger.schema import RequestRecord
from cc_nemo.proxy.ids import new_request_id
from cc_nemo.proxy.keys import (
    ADMITTED,
    EXCHANGE,
    HEAP_TRIMMER_KEY,
    LEDGER_KEY,
    MESSAGES_PATH,
    REQUEST_ID,
    SENT,
    SETTINGS_KEY,
)
from cc_nemo.proxy.loopback import host_header_is_loopback
from cc_nemo.proxy.memory import TRIM_AFTER_BODY_BYTES
from cc_nemo.proxy.record import Exchange
from cc_nemo.proxy.replies import error_response
from cc_nemo.translate.errors import AnthropicError, ErrorReply, as_stream_error, invalid_request
from cc_nemo.translate.sse import encode_event

log = logging.getLogger("cc_nemo.proxy.app")

# Status recorded when the client went away before the answer was complete (nginx's 499).
CLIENT_CLOSED = 499
INTERNAL_ERROR = "internal proxy error (details in the cc-proxy log)"
# Claude Code names its session in this header (a UUID); the ledger and the log line keep it.
CLAUDE_SESSION_HEADER = "x-claude-code-session-id"
CLAUDE_SESSION_MAX_CHARS = 128
# Anything else would break the log line's key=value fields or pass for another value.
_NOT_SESSION_ID_CHAR = re.compile(r"[^A-Za-z0-9._:-]")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def outer_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, Anthropic-shaped errors (never a traceback), the log line, the ledger."""
    request_id = new_request_id()
    request[REQUEST_ID] = request_id
    request[SENT] = None
    started = time.monotonic()
    arrived = time.time()
    exchange: Exchange | None = None
    if request.method == "POST" and request.path == MESSAGES_PATH:
        exchange = Exchange(request_id=request_id, started=started)
        exchange.claude_session_id = claude_session_id(request.headers.get(CLAUDE_SESSION_HEADER))
        request[EXCHANGE] = exchange
    status = 500
    try:
        try:
            _admit(request)
            response = await handler(request)
        except ErrorReply as exc:
            response = await _error_reply(request, exc.error, exchange)
        except web.HTTPException as exc:
            error = _http_exception_error(request, exc)
            response = await _error_reply(request, error, exchange)
        except web.RequestPayloadError as exc:
            response = await _error_reply(request, _unreadable_body_error(exc), exchange)
        except (asyncio.CancelledError, ConnectionResetError):
            status = CLIENT_CLOSED
            if exchange is not None:
                exchange.client_gone = True
            raise
        except Exception:
            log.exception("%s unhandled error", request_id)
            error = AnthropicError(500, "api_error", INTERNAL_ERROR)
            response = await _error_reply(request, error, exchange, internal=True)
        status = CLIENT_CLOSED if exchange is not None and exchange.client_gone else response.status
        return response
    finally:
        del request[SENT]
        _finish(request, exchange, status, started, arrived)
        if request.content.total_bytes >= TRIM_AFTER_BODY_BYTES:
            request.app[HEAP_TRIMMER_KEY].soon()


async def _error_reply(
    request: web.Request,
    error: AnthropicError,
    exchange: Exchange | None,
    *,
    internal: bool = False,
) -> web.StreamResponse:
    """The error as a response of its own or, when a response has already begun, as the
    end of that one: a second response would put a status line inside the chunked body."""
    sent = request.get(SENT)
    if sent is not None and sent.prepared:
        # A bug of ours keeps its type (retrying it won't help); others as the writer sends them.
        error = error if internal else as_stream_error(error)
        if exchange is not None:
            exchange.error_type = error.type
        await _end_with_error(request, sent, error, exchange)
        return sent
    if exchange is not None:
        exchange.error_type = error.type
    return error_response(error, request[REQUEST_ID])


async def _end_with_error(
    request: web.Request,
    sent: web.StreamResponse,
    error: AnthropicError,
    exchange: Exchange | None,
) -> None:
    if sent.content_type != "text/event-stream":
        # No in-band way to say it: cut the connection so the body reads as incomplete.
        if request.transport is not None:
            request.transport.abort()
        return
    try:
        await sent.write(encode_event(error.event()))
        await sent.write_eof()
    except ConnectionResetError:
        if exchange is not None:
            exchange.client_gone = True
    except RuntimeError:
        pass  # the stream had already ended: the client has its answer, nothing to add


def _unreadable_body_error(exc: web.RequestPayloadError) -> AnthropicError:
    """aiohttp's text quotes the body; ours names the likely cause only."""
    if isinstance(exc.__cause__, ContentEncodingError):
        return invalid_request("request body could not be decoded as its Content-Encoding says")
    return invalid_request("request body could not be read (malformed chunked framing?)")


def _http_exception_error(request: web.Request, exc: web.HTTPException) -> AnthropicError:
    if exc.status == 413:
        limit = request.app[SETTINGS_KEY].max_body_bytes
        return AnthropicError(
            413,
            "request_too_large",
            f"Request too large: the body exceeds the {limit // (1024 * 1024)} MiB limit",
        )
    if exc.status in (404, 405):
        path = request.path if len(request.path) <= 200 else request.path[:200] + "…"
        return AnthropicError(
            404, "not_found_error", f"{request.method} {path} is not served by cc-proxy"
        )
    kind = "invalid_request_error" if exc.status < 500 else "api_error"
    return AnthropicError(exc.status, kind, exc.reason or "request failed")


def claude_session_id(header: str | None) -> str | None:
    """The `x-claude-code-session-id` header as the ledger and the log keep it: clipped, and
    only characters a session id has (Claude Code's is a UUID)."""
    if not header:
        return None
    clipped = header[:CLAUDE_SESSION_MAX_CHARS]
    if _NOT_SESSION_ID_CHAR.search(clipped) is None:  # Claude Code's: a third of sub()'s time
        return clipped
    return _NOT_SESSION_ID_CHAR.sub("_", clipped)


def _finish(
    request: web.Request, exchange: Exchange | None, status: int, started: float, arrived: float
) -> None:
    duration_ms = (time.monotonic() - started) * 1000
    request_id = request[REQUEST_ID]
    if exchange is None:
        log.info(
            "%s %s %s status=%d duration_ms=%.0f",
            request_id,
            request.method,
            request.path,
            status,
            duration_ms,
        )
        return
    usage = exchange.usage
    input_tokens = usage.input_tokens if usage else 0
    output_tokens = usage.output_tokens if usage else 0
    cached = usage.cache_read_input_tokens if usage else 0
    error_type = exchange.error_type
    if status == CLIENT_CLOSED and error_type is None:
        error_type = "client_closed"
    cost = exchange.spec.cost_usd(input_tokens, output_tokens, cached) if exchange.spec else 0.0
    ledger = request.app[LEDGER_KEY]
    record = RequestRecord(
        ts=arrived,
        proxy_session=ledger.session_id,
        claude_session=exchange.claude_session_id,
        request_id=request_id,
        model=exchange.requested_model,
        upstream_model=exchange.upstream_model,
        stream=exchange.stream,
        status=status,
        error_type=error_type,
        attempts=exchange.upstream_attempts,
        input_tokens=input_tokens,
        cache_read_tokens=cached,
        output_tokens=output_tokens,
        reasoning_tokens=usage.reasoning_tokens if usage else 0,
        cost_usd=cost,
        ttft_ms=exchange.ttft_ms,
        duration_ms=duration_ms,
        gateway_log_id=exchange.gateway_log_id,
        fallback_from=exchange.fallback_from,
        answered_by=exchange.spec.alias if exchange.fallback_from and exchange.spec else None,
    )
    # A request the Host guard or the token check turned away is not usage: logged only.
    if request.get(ADMITTED):
        ledger.record(record)
    log.info(
        "%s POST %s session=%s model=%s upstream=%s status=%d stream=%s in=%d out=%d "
        "cached=%d ttft_ms=%s duration_ms=%.0f attempts=%d error=%s%s",
        request_id,
        MESSAGES_PATH,
        record.claude_session or "-",
        record.model or "-",
        record.upstream_model or "-",
        status,
        "yes" if record.stream else "no",
        input_tokens,
        output_tokens,
        cached,
        f"{record.ttft_ms:.0f}" if record.ttft_ms is not None else "-",
        duration_ms,
        record.attempts,
        error_type or "-",
        f" notes={'; '.join(exchange.notes)}" if exchange.notes else "",
    )


# Host headers seen and whether they name loopback: a client sends the same one every time,
# and parsing it as an address costs more than the rest of the guard. Bounded: a client
# inventing names gets them checked afresh, never a growing dict.
_LOOPBACK_VERDICTS: dict[str, bool] = {}
_MAX_LOOPBACK_VERDICTS = 64


def _admit(request: web.Request) -> None:
    """The loopback Host guard, then the session token: ErrorReply for a request turned away.
    Plain calls from the outer middleware rather than middlewares of their own (each layer
    costs a coroutine and a partial per request, bench/README.md)."""
    settings = request.app[SETTINGS_KEY]
    if not settings.allow_remote and not _host_is_loopback(request.headers.get("Host")):
        # A web page can't reach us by DNS rebinding: it still sends its own name.
        raise ErrorReply(
            AnthropicError(
                403,
                "permission_error",
                "cc-proxy only answers requests addressed to 127.0.0.1 or localhost",
            )
        )
    path = request.path
    if path == "/v1" or path.startswith("/v1/"):
        # Everything under /v1 needs the session token (Bearer or x-api-key). Every presented
        # credential is checked, no early exit: timing says nothing about which matched.
        expected = settings.session_token
        matches = [token_matches(token, expected) for token in _presented_tokens(request)]
        if not any(matches):
            raise ErrorReply(
                AnthropicError(
                    401,
                    "authentication_error",
                    "invalid or missing cc-proxy session token (send it as "
                    "'Authorization: Bearer <token>' or 'x-api-key')",
                )
            )
    request[ADMITTED] = True


def _host_is_loopback(header: str | None) -> bool:
    if header is None:
        return False
    verdict = _LOOPBACK_VERDICTS.get(header)
    if verdict is None:
        verdict = host_header_is_loopback(header)
        if len(_LOOPBACK_VERDICTS) < _MAX_LOOPBACK_VERDICTS:
            _LOOPBACK_VERDICTS[header] = verdict
    return verdict


def _presented_tokens(request: web.Request) -> list[str]:
    tokens = []
    authorization = request.headers.get("Authorization", "")
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        tokens.append(credential.strip())
    api_key = request.headers.get("x-api-key", "").strip()
    if api_key:
        tokens.append(api_key)
    return tokens


def token_matches(presented: str, expected: str) -> bool:
    """Constant-time comparison of the bytes: aiohttp hands over header bytes that are not
    UTF-8 as surrogate escapes, which surrogateescape turns back into those bytes."""
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )
