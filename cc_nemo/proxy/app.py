"""The proxy's aiohttp application: routes, middlewares, lifecycle.

The launcher runs it in-process next to `claude`; `cc-proxy serve` runs it alone. Imported
lazily (aiohttp is slow to import), never by cli.py at start-up.
"""

from __future__ import annotations

import asyncio
import ctypes
import hmac
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    ContentEncodingError,
    InvalidHeader,
    LineTooLong,
    TransferEncodingError,
)

from cc_nemo.errors import UserError
from cc_nemo.proxy.exchange import Exchange, MessagesRelay, read_json_body
from cc_nemo.proxy.ids import new_request_id
from cc_nemo.proxy.logs import close_logging, configure_logging, logging_configured, secret_values
from cc_nemo.proxy.replies import ProxyError, error_response
from cc_nemo.proxy.routing import discovery_id, session_specs
from cc_nemo.proxy.upstream import UpstreamClient, create_session
from cc_nemo.proxy.usage import RequestRecord, UsageLedger
from cc_nemo.settings.catalog import ModelSpec, bare_model_id
from cc_nemo.settings.runtime import ProxySettings
from cc_nemo.translate.errors import AnthropicError, as_stream_error, invalid_request
from cc_nemo.translate.request import InvalidRequest, validate_request
from cc_nemo.translate.response import UpstreamErrorPayload
from cc_nemo.translate.sse import encode_event
from cc_nemo.translate.tokens import estimate_tokens

log = logging.getLogger("cc_nemo.proxy.app")

SETTINGS_KEY = web.AppKey("cc_nemo.settings.runtime", ProxySettings)
LEDGER_KEY = web.AppKey("cc_nemo.ledger", UsageLedger)
HEAP_TRIMMER_KEY = web.AppKey("cc_nemo.heap_trimmer", "HeapTrimmer")
UPSTREAM_KEY = web.AppKey("cc_nemo.proxy.upstream", UpstreamClient)
RELAY_KEY = web.AppKey("cc_nemo.proxy.exchange", MessagesRelay)
# Upstream model ids that rejected tool_choice "required" this session (WIRE.md C.8).
TOOL_CHOICE_FALLBACK_KEY = web.AppKey("cc_nemo.tool_choice_fallback", set)

# Per-request state; typed keys where aiohttp has them (3.12+), plain strings before.
_RequestKey: Any = getattr(web, "RequestKey", None)
REQUEST_ID: Any = _RequestKey("cc_nemo.request_id", str) if _RequestKey else "cc_nemo.request_id"
EXCHANGE: Any = _RequestKey("cc_nemo.exchange", Exchange) if _RequestKey else "cc_nemo.exchange"
# The response whose status line went out, if any: after that an error can't be a new response.
SENT: Any = _RequestKey("cc_nemo.sent", web.StreamResponse) if _RequestKey else "cc_nemo.sent"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MESSAGES_PATH = "/v1/messages"
# Fixed so listings are stable; Claude Code only reads id and display_name.
MODELS_CREATED_AT = "2026-01-01T00:00:00Z"
# How long stop() lets in-flight requests finish before cancelling them.
SHUTDOWN_GRACE = 1.0
# Status recorded when the client went away before the answer was complete (nginx's 499).
CLIENT_CLOSED = 499
INTERNAL_ERROR = "internal proxy error (details in the cc-proxy log)"
# After a body this big, freed heap pages are handed back to the system (malloc_trim)...
TRIM_AFTER_BODY_BYTES = 1024 * 1024
# ...a little later, off the request's path, and at most once per TRIM_INTERVAL: a trim walks
# the whole heap (a few ms), too much to pay on every turn of a long session.
TRIM_DELAY = 2.0
TRIM_INTERVAL = 30.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---- app factory -----------------------------------------------------------------------------


def create_app(settings: ProxySettings, *, ledger: UsageLedger | None = None) -> web.Application:
    """The proxy app for one session; the upstream session lives in cleanup_ctx."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[_outer_middleware, _host_middleware, _auth_middleware],
    )
    app[SETTINGS_KEY] = settings
    app[LEDGER_KEY] = ledger if ledger is not None else UsageLedger()
    app[HEAP_TRIMMER_KEY] = HeapTrimmer()
    app.on_cleanup.append(_stop_trimming)
    app[TOOL_CHOICE_FALLBACK_KEY] = set()
    app.cleanup_ctx.append(_logging_ctx)
    app.cleanup_ctx.append(_upstream_ctx)
    app.on_response_prepare.append(_add_request_id)

    app.router.add_post(MESSAGES_PATH, _messages)
    app.router.add_post("/v1/messages/count_tokens", _count_tokens)
    app.router.add_get("/v1/models", _list_models)
    app.router.add_get("/v1/models/{model_id}", _get_model)
    app.router.add_get("/", _health)
    app.router.add_get("/api/hello", _health)
    return app


async def _logging_ctx(app: web.Application) -> AsyncIterator[None]:
    """Log to settings.log_file while the app runs, unless the embedding process (the
    launcher) has already set logging up for the whole session: then leave it alone."""
    settings = app[SETTINGS_KEY]
    handler = None
    if not logging_configured():
        handler = configure_logging(
            settings.log_file,
            secrets=secret_values(settings.session_token, settings.provider.headers),
        )
    log.info(
        "proxy starting: provider=%s main=%s small=%s",
        settings.provider.kind,
        settings.main_model.alias,
        settings.small_model.alias,
    )
    yield
    log.info("proxy stopped: %s", app[LEDGER_KEY].summary().render().replace("\n", "; "))
    if handler is not None:
        close_logging(handler)


async def _stop_trimming(app: web.Application) -> None:
    app[HEAP_TRIMMER_KEY].cancel()


async def _upstream_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    session = create_session(connect_timeout=settings.connect_timeout)
    upstream = UpstreamClient(
        session,
        url=settings.provider.chat_completions_url,
        headers=settings.provider.headers,
        first_byte_timeout=settings.first_byte_timeout,
        read_timeout=settings.read_timeout,
    )
    app[UPSTREAM_KEY] = upstream
    app[RELAY_KEY] = MessagesRelay(
        settings, upstream, forced_tool_choice_rejected=app[TOOL_CHOICE_FALLBACK_KEY]
    )
    try:
        yield
    finally:
        await session.close()


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["request-id"] = request.get(REQUEST_ID) or new_request_id()
    if SENT in request:  # only while _outer_middleware runs: no request-response cycle after
        request[SENT] = response


# ---- middlewares -----------------------------------------------------------------------------


@web.middleware
async def _outer_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, Anthropic-shaped errors (never a traceback), the log line, the ledger."""
    request_id = new_request_id()
    request[REQUEST_ID] = request_id
    request[SENT] = None
    started = time.monotonic()
    exchange: Exchange | None = None
    if request.method == "POST" and request.path == MESSAGES_PATH:
        exchange = Exchange(request_id=request_id, started=started)
        request[EXCHANGE] = exchange
    status = 500
    try:
        try:
            response = await handler(request)
        except (ProxyError, UpstreamErrorPayload) as exc:
            # Both carry the Anthropic error to answer with: ours, or the upstream's own.
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
        _finish(request, exchange, status, started)
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


def _finish(request: web.Request, exchange: Exchange | None, status: int, started: float) -> None:
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
    record = RequestRecord(
        request_id=request_id,
        model=exchange.requested_model,
        upstream_model=exchange.upstream_model,
        status=status,
        stream=exchange.stream,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cached,
        cost_usd=cost,
        ttft_ms=exchange.ttft_ms,
        duration_ms=duration_ms,
        error_type=error_type,
        fallback_from=exchange.fallback_from,
        answered_by=exchange.spec.alias if exchange.fallback_from and exchange.spec else None,
    )
    request.app[LEDGER_KEY].record(record)
    log.info(
        "%s POST %s model=%s upstream=%s status=%d stream=%s in=%d out=%d cached=%d "
        "ttft_ms=%s duration_ms=%.0f attempts=%d error=%s%s",
        request_id,
        MESSAGES_PATH,
        record.model or "-",
        record.upstream_model or "-",
        status,
        "yes" if record.stream else "no",
        input_tokens,
        output_tokens,
        cached,
        f"{record.ttft_ms:.0f}" if record.ttft_ms is not None else "-",
        duration_ms,
        exchange.upstream_attempts,
        error_type or "-",
        f" notes={'; '.join(exchange.notes)}" if exchange.notes else "",
    )


def is_loopback_host(host_header: str | None) -> bool:
    """Whether a Host header names this machine's loopback (any port): DNS-rebinding guard."""
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else host[1:]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name.rstrip(".") in LOOPBACK_HOSTS


@web.middleware
async def _host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse requests addressed to another name: a web page can't reach us by DNS rebinding."""
    if not request.app[SETTINGS_KEY].allow_remote and not is_loopback_host(
        request.headers.get("Host")
    ):
        raise ProxyError(
            AnthropicError(
                403,
                "permission_error",
                "cc-proxy only answers requests addressed to 127.0.0.1 or localhost",
            )
        )
    return await handler(request)


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


@web.middleware
async def _auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Everything under /v1 needs the session token (Bearer or x-api-key)."""
    if request.path == "/v1" or request.path.startswith("/v1/"):
        expected = request.app[SETTINGS_KEY].session_token
        # Check every presented credential, no early exit: timing says nothing about which.
        matches = [token_matches(token, expected) for token in _presented_tokens(request)]
        if not any(matches):
            raise ProxyError(
                AnthropicError(
                    401,
                    "authentication_error",
                    "invalid or missing cc-proxy session token (send it as "
                    "'Authorization: Bearer <token>' or 'x-api-key')",
                )
            )
    return await handler(request)


# ---- handlers --------------------------------------------------------------------------------


async def _messages(request: web.Request) -> web.StreamResponse:
    return await request.app[RELAY_KEY].handle(request, request[EXCHANGE])


async def _count_tokens(request: web.Request) -> web.Response:
    """A local estimate (Workers AI has no tokenizer endpoint); never 0 for a real request."""
    payload = await read_json_body(request)
    try:
        validate_request(payload, require_max_tokens=False)
    except InvalidRequest as exc:
        raise ProxyError(invalid_request(str(exc))) from None
    return _json({"input_tokens": estimate_tokens(payload)})


def _model_info(settings: ProxySettings, spec: ModelSpec) -> dict[str, Any]:
    role = ""
    if spec == settings.main_model:
        role = ", main"
    elif spec == settings.small_model:
        role = ", small"
    return {
        "type": "model",
        "id": discovery_id(spec.alias),
        "display_name": f"{spec.alias} ({bare_model_id(spec.model)}{role})",
        "created_at": MODELS_CREATED_AT,
        "max_input_tokens": spec.context_window,
        "max_tokens": spec.max_output_tokens,
    }


async def _list_models(request: web.Request) -> web.Response:
    """Anthropic's list shape; ids contain "claude" so gateway discovery keeps them."""
    settings = request.app[SETTINGS_KEY]
    models = [_model_info(settings, spec) for spec in session_specs(settings)]
    ids = [m["id"] for m in models]
    after_id = request.query.get("after_id")
    before_id = request.query.get("before_id")
    if after_id in ids:
        models = models[ids.index(after_id) + 1 :]
    elif before_id in ids:
        models = models[: ids.index(before_id)]
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        raise ProxyError(invalid_request("limit: must be an integer")) from None
    limit = min(max(limit, 1), 1000)
    page = models[-limit:] if before_id in ids and after_id not in ids else models[:limit]
    return _json(
        {
            "data": page,
            "has_more": len(page) < len(models),
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }
    )


async def _get_model(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    wanted = request.match_info["model_id"]
    for spec in session_specs(settings):
        if wanted in (discovery_id(spec.alias), spec.alias):
            return _json(_model_info(settings, spec))
    raise ProxyError(AnthropicError(404, "not_found_error", f"model: {wanted!r} not found"))


async def _health(request: web.Request) -> web.Response:
    """Claude Code probes HEAD / or HEAD /api/hello at start-up, without auth headers."""
    return _json({"status": "ok", "service": "cc-proxy"})


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


# ---- memory ----------------------------------------------------------------------------------


def _glibc() -> Any:
    """The C library's allocator entry points, where they are glibc's (else None)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # musl and others: no malloc_trim
        return None
    return libc


_LIBC = _glibc()


class HeapTrimmer:
    """Hands the heap pages big requests freed back to the system, soon after, at most once
    per TRIM_INTERVAL.

    31 requests of 1-33 MB left `cc-proxy serve` 9-51 MB above where it started: glibc keeps
    freed heap pages for reuse. A trim brings it back near the start (measured in
    bench/README.md). Pinning glibc's mmap threshold instead cost 60 % more CPU on a 2 MB
    history (every big buffer then page-faults anew)."""

    def __init__(self) -> None:
        self._pending: asyncio.TimerHandle | None = None
        self._last = -TRIM_INTERVAL

    def soon(self) -> None:
        if _LIBC is None or self._pending is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(TRIM_DELAY, self._last + TRIM_INTERVAL - loop.time())
        self._pending = loop.call_later(delay, self._trim, loop)

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _trim(self, loop: asyncio.AbstractEventLoop) -> None:
        self._pending = None
        self._last = loop.time()
        if _LIBC is not None:
            _LIBC.malloc_trim(0)


# ---- what aiohttp answers itself -------------------------------------------------------------


class _ProxyRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering in Anthropic's JSON where aiohttp would answer
    with a text/plain page of its own: HTTP its parser refuses (before any middleware runs) and
    exceptions that escape the app. That page quotes the offending bytes, so a token sent in an
    over-long Authorization header came back in the body: nothing of the request is quoted."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # As aiohttp does: the connection is closed, there is no answering any more.
            raise ConnectionError("the response has begun; no error response can follow")
        request_id = new_request_id()
        if status >= 500:
            if not isinstance(exc, ConnectionError):
                log.error("%s unhandled error", request_id, exc_info=exc)
            error = AnthropicError(
                status, "timeout_error" if status == 504 else "api_error", INTERNAL_ERROR
            )
        else:
            refusal = f"malformed HTTP request: {self._refusal(exc)}"
            error = AnthropicError(status, "invalid_request_error", refusal)
            # The parser's own text quotes the request (tokens too): only the type is logged.
            log.info("%s refused a malformed HTTP request (%s)", request_id, type(exc).__name__)
        return _protocol_reply(request, error, request_id)

    def _refusal(self, exc: BaseException | None) -> str:
        """What was wrong, in our words (aiohttp's quote the request)."""
        if isinstance(exc, LineTooLong):
            return f"the request line or a header is longer than {self.max_field_size} bytes"
        if isinstance(exc, ContentEncodingError):
            return "a Content-Encoding cc-proxy cannot decode (send identity, gzip or deflate)"
        if isinstance(exc, TransferEncodingError):
            return "malformed chunked body"
        if isinstance(exc, BadHttpMethod):
            return "not an HTTP/1.1 request"
        if isinstance(exc, InvalidHeader):
            return "a header name or value is not valid"
        return (
            "bad request line, headers or chunked framing "
            f"(at most {self.max_headers} headers of {self.max_field_size} bytes)"
        )

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        if isinstance(kwargs.get("exc_info"), web.RequestPayloadError):
            # After we answered a body that would not decode, aiohttp drains the rest of it
            # and meets the same error again: answered already, no traceback needed.
            return
        super().log_exception(*args, **kwargs)

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        if isinstance(resp, web.HTTPException) and not resp.prepared:
            # Raised where no middleware sees it: aiohttp's `Expect:` check, whose text quotes
            # the header. Our middleware turns every other HTTPException into an answer.
            request_id = new_request_id()
            kind = "invalid_request_error" if resp.status < 500 else "api_error"
            error = AnthropicError(resp.status, kind, resp.reason or "request refused")
            resp = _protocol_reply(request, error, request_id)
        return await super().finish_response(request, resp, start_time)


def _protocol_reply(
    request: web.BaseRequest, error: AnthropicError, request_id: str
) -> web.Response:
    request[REQUEST_ID] = request_id  # what on_response_prepare names it, where it runs
    response = error_response(error, request_id)
    response.headers["request-id"] = request_id
    # The request was not understood, so neither is where the next one would start.
    response.force_close()
    return response


class _ProxyServer(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _ProxyRequestHandler(self, loop=self._loop, **self._kwargs)


class _ProxyAppRunner(web.AppRunner):
    """AppRunner whose connections use _ProxyRequestHandler."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _ProxyServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )


# ---- running ---------------------------------------------------------------------------------


@dataclass
class RunningProxy:
    """A started proxy; `stop()` closes the listener, in-flight requests and the upstream session."""

    url: str
    port: int
    ledger: UsageLedger = field(repr=False)
    _runner: web.AppRunner = field(repr=False)

    async def stop(self) -> None:
        await self._runner.cleanup()


def _is_loopback_address(host: str) -> bool:
    return host.strip("[]").lower() in LOOPBACK_HOSTS or host.startswith("127.")


async def start_proxy(
    settings: ProxySettings,
    *,
    ledger: UsageLedger | None = None,
    sock: socket.socket | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> RunningProxy:
    """Serve the proxy on an already listening `sock`, or bind host:port (port 0: any free)."""
    if sock is None and not _is_loopback_address(host) and not settings.allow_remote:
        raise UserError(
            f"refusing to listen on {host}: cc-proxy binds 127.0.0.1 only unless remote access "
            "is explicitly allowed with a session token"
        )
    ledger = ledger if ledger is not None else UsageLedger()
    app = create_app(settings, ledger=ledger)
    runner = _ProxyAppRunner(
        app,
        # A client that disconnects cancels its handler, which cancels the upstream request.
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=SHUTDOWN_GRACE,
        logger=logging.getLogger("cc_nemo.http"),
    )
    await runner.setup()
    try:
        site: web.BaseSite = (
            web.SockSite(runner, sock) if sock is not None else web.TCPSite(runner, host, port)
        )
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    except BaseException:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    return RunningProxy(
        url=f"http://{url_host}:{bound_port}", port=bound_port, ledger=ledger, _runner=runner
    )
