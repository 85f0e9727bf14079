"""What aiohttp would answer by itself, answered in Anthropic's JSON instead: HTTP its parser
refuses before any middleware runs, and exceptions that escape the app. aiohttp's own page
quotes the offending bytes (a token in an over-long header came back): ours quotes nothing.

It subclasses aiohttp's RequestHandler, Server and AppRunner (`_make_server`, `Server._kwargs`
are private API: tests/server/test_hostile.py fails if they change)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    ContentEncodingError,
    InvalidHeader,
    LineTooLong,
    TransferEncodingError,
)

from cc_nemo.proxy.ids import new_request_id
from cc_nemo.proxy.keys import REQUEST_ID
from cc_nemo.proxy.middlewares import INTERNAL_ERROR
from cc_nemo.proxy.replies import error_response
from cc_nemo.translate.errors import AnthropicError

log = logging.getLogger("cc_nemo.proxy.app")


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


class ProxyAppRunner(web.AppRunner):
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
