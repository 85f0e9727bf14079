"""The proxy's aiohttp application: the app factory, routes, handlers and lifecycle.

The launcher runs it in-process next to `claude`; `cc-proxy serve` runs it alone. Imported
lazily (aiohttp is slow to import), never by the CLI at start-up. Middlewares live in
middlewares.py, the /v1/messages exchange in exchange.py (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from cc_nemo.errors import UserError
from cc_nemo.proxy.bodies import read_json_body
from cc_nemo.proxy.calls import UpstreamCalls
from cc_nemo.proxy.exchange import MessagesRelay
from cc_nemo.proxy.ids import new_request_id
from cc_nemo.proxy.keys import (
    EXCHANGE,
    HEAP_TRIMMER_KEY,
    LEDGER_KEY,
    MESSAGES_PATH,
    RELAY_KEY,
    REQUEST_ID,
    SENT,
    SETTINGS_KEY,
    UPSTREAM_KEY,
)
from cc_nemo.proxy.logs import close_logging, configure_logging, logging_configured, secret_values
from cc_nemo.proxy.loopback import is_loopback
from cc_nemo.proxy.memory import HeapTrimmer
from cc_nemo.proxy.middlewares import outer_middleware
from cc_nemo.proxy.protocol import ProxyAppRunner
from cc_nemo.proxy.routing import discovery_id, session_specs
from cc_nemo.proxy.upstream import UpstreamClient, create_session
from cc_nemo.proxy.usage import UsageLedger
from cc_nemo.settings.catalog import ModelSpec
from cc_nemo.settings.runtime import ProxySettings
from cc_nemo.translate.errors import AnthropicError, ErrorReply, invalid_request
from cc_nemo.translate.request import InvalidRequest, check_request
from cc_nemo.translate.tokens import estimate_tokens

log = logging.getLogger("cc_nemo.proxy.app")

# Fixed so listings are stable; Claude Code only reads id and display_name.
MODELS_CREATED_AT = "2026-01-01T00:00:00Z"
# How long stop() lets in-flight requests finish before cancelling them.
SHUTDOWN_GRACE = 1.0


# ---- app factory -----------------------------------------------------------------------------


def create_app(settings: ProxySettings, *, ledger: UsageLedger | None = None) -> web.Application:
    """The proxy app for one session; the upstream session lives in cleanup_ctx."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[outer_middleware],
    )
    app[SETTINGS_KEY] = settings
    app[LEDGER_KEY] = ledger if ledger is not None else UsageLedger()
    app[HEAP_TRIMMER_KEY] = HeapTrimmer()
    app.on_cleanup.append(_stop_trimming)
    app.cleanup_ctx.append(_logging_ctx)
    # After logging (its warnings reach the log), before upstream (closed after every request).
    app.cleanup_ctx.append(_ledger_ctx)
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
    log.info("proxy stopped: %s", app[LEDGER_KEY].final_summary().render().replace("\n", "; "))
    if handler is not None:
        close_logging(handler)


async def _ledger_ctx(app: web.Application) -> AsyncIterator[None]:
    """The ledger's writer thread runs while the app does; stopping flushes it, off the loop."""
    ledger = app[LEDGER_KEY]
    ledger.open()
    yield
    await asyncio.to_thread(ledger.close)


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
    # Upstream model ids that rejected a forced tool_choice: "auto" for them from then on.
    calls = UpstreamCalls(settings, upstream, forced_tool_choice_rejected=set())
    app[RELAY_KEY] = MessagesRelay(calls)
    try:
        yield
    finally:
        await session.close()


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["request-id"] = request.get(REQUEST_ID) or new_request_id()
    if SENT in request:  # only while outer_middleware runs: no request-response cycle after
        request[SENT] = response


# ---- handlers --------------------------------------------------------------------------------


async def _messages(request: web.Request) -> web.StreamResponse:
    return await request.app[RELAY_KEY].handle(request, request[EXCHANGE])


async def _count_tokens(request: web.Request) -> web.Response:
    """A local estimate (Workers AI has no tokenizer endpoint); never 0 for a real request."""
    payload = await read_json_body(request)
    try:
        checked = check_request(payload, require_max_tokens=False)
    except InvalidRequest as exc:
        raise ErrorReply(invalid_request(str(exc))) from None
    tools = checked.tools.tally if checked.tools is not None else None
    return _json({"input_tokens": estimate_tokens(payload, tools)})


def _model_info(settings: ProxySettings, spec: ModelSpec) -> dict[str, Any]:
    role = ""
    if spec == settings.main_model:
        role = ", main"
    elif spec == settings.small_model:
        role = ", small"
    return {
        "type": "model",
        "id": discovery_id(spec.alias),
        # Claude Code's `/model` lists it under "From gateway": the name a person knows, and the
        # alias `cc-proxy run` takes.
        "display_name": f"{spec.display_name} ({spec.alias}{role})",
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
        raise ErrorReply(invalid_request("limit: must be an integer")) from None
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
    raise ErrorReply(AnthropicError(404, "not_found_error", f"model: {wanted!r} not found"))


async def _health(request: web.Request) -> web.Response:
    """Claude Code probes HEAD / or HEAD /api/hello at start-up, without auth headers."""
    return _json({"status": "ok", "service": "cc-proxy"})


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


# ---- running ---------------------------------------------------------------------------------


@dataclass
class RunningProxy:
    """A started proxy; `stop()` closes the listener, in-flight requests, the upstream session
    and the ledger (every record written)."""

    url: str
    port: int
    ledger: UsageLedger = field(repr=False)
    _runner: web.AppRunner = field(repr=False)

    async def stop(self) -> None:
        await self._runner.cleanup()


async def start_proxy(
    settings: ProxySettings,
    *,
    ledger: UsageLedger | None = None,
    sock: socket.socket | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> RunningProxy:
    """Serve the proxy on an already listening `sock`, or bind host:port (port 0: any free)."""
    if sock is None and not is_loopback(host) and not settings.allow_remote:
        raise UserError(
            f"refusing to listen on {host}: cc-proxy binds 127.0.0.1 only unless remote access "
            "is explicitly allowed with a session token"
        )
    ledger = ledger if ledger is not None else UsageLedger()
    app = create_app(settings, ledger=ledger)
    runner = ProxyAppRunner(
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
