"""A scripted fake of Cloudflare's OpenAI-compatible upstream (and of an Anthropic upstream).

It reproduces the Workers AI behaviours of docs/wire.md ("Errors", "Model quirks") on demand (reasoning fields,
tool-call arguments as JSON objects, finish_reason only on the final usage chunk, usage on
every chunk, no `[DONE]`, Cloudflare error envelopes, slow first byte, a dropped stream, a JSON
body despite `stream: true`) and records every request it receives.

In tests:
    fake = FakeUpstream(); await fake.start()
    fake.enqueue(Reply.stream(text_stream("hello")), Reply.error(429, cf_error(3040, "...")))
    ... fake.requests[-1].body["model"] ...

It also serves what `cc-proxy login` and `cc-proxy models --remote` ask of a provider:
`GET {base}/models` (an OpenAI or Anthropic model listing of `listed_models`) and Cloudflare's
REST model search, `GET /client/v4/accounts/{account}/ai/models/search`, paged from
`workers_ai_models` (`workers_ai_model(...)` builds one entry). Scripted replies answer these
too. The CLI runs its own `asyncio.run`, so there the fake serves from a thread:
    with FakeUpstream().serving_in_thread() as fake:
        run_cli("login", "--gateway-url", f"{fake.url}/v1/acct/gw", ...)

Standalone (for the real claude CLI, the launcher or a benchmark):
    python -m tests.fake_upstream --port 8787 --script echo
It prints `listening on http://127.0.0.1:PORT` and serves until interrupted. `GET /_fake/requests`
lists what it received, `POST /_fake/enqueue` scripts the next reply ({"kind": "error", ...}),
`POST /_fake/reset` forgets both.

On AI Gateway's two chat paths it checks the model id's prefix first, as the gateway does:
`…/compat/chat/completions` with a bare `@cf/…` id is a 400 with code 2008 ("Invalid provider"),
`…/workers-ai/v1/chat/completions` with anything but a bare `@cf/`/`@hf/` id a 400 with code 5007.

With nothing scripted it answers with "echo": text derived from the last user message; if tools
were offered and the last user text contains `RUN_BASH: <cmd>`, a Bash tool call running <cmd>;
after a tool result, text quoting that result.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

FAKE_MODEL = "workers-ai/@cf/fake/model"
RUN_BASH_MARKER = "RUN_BASH:"


# ---- Workers AI shaped payloads ---------------------------------------------------------------


def usage_block(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    """OpenAI usage, with Workers AI's prompt-cache detail when `cached`."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage


def chunk(
    delta: Mapping[str, Any] | None = None,
    *,
    finish_reason: str | None = None,
    usage: Mapping[str, Any] | None = None,
    model: str = FAKE_MODEL,
    chunk_id: str = "chatcmpl-fake",
) -> dict[str, Any]:
    """One `chat.completion.chunk`."""
    payload: dict[str, Any] = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": 1_760_000_000,
        "model": model,
        "choices": [{"index": 0, "delta": dict(delta or {}), "finish_reason": finish_reason}],
    }
    if usage is not None:
        payload["usage"] = dict(usage)
    return payload


def _split(text: str, pieces: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // max(pieces, 1)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def text_stream(
    text: str,
    *,
    reasoning: str | None = None,
    reasoning_field: str = "reasoning_content",
    pieces: int = 3,
    prompt_tokens: int = 20,
    cached_tokens: int = 0,
    finish_reason: str = "stop",
    model: str = FAKE_MODEL,
) -> list[dict[str, Any]]:
    """Workers AI style: usage (cumulative) on every chunk, finish_reason only on the last one."""
    chunks: list[dict[str, Any]] = []
    emitted = 0
    for part in _split(reasoning or "", pieces):
        emitted += 1
        chunks.append(
            chunk(
                {"role": "assistant", reasoning_field: part},
                usage=usage_block(prompt_tokens, emitted, cached_tokens),
                model=model,
            )
        )
    for part in _split(text, pieces):
        emitted += 1
        chunks.append(
            chunk(
                {"role": "assistant", "content": part},
                usage=usage_block(prompt_tokens, emitted, cached_tokens),
                model=model,
            )
        )
    chunks.append(
        chunk(
            {},
            finish_reason=finish_reason,
            usage=usage_block(prompt_tokens, emitted + 1, cached_tokens),
            model=model,
        )
    )
    return chunks


def tool_call_stream(
    name: str,
    arguments: Mapping[str, Any],
    *,
    call_id: str = "chatcmpl-tool-0001",
    text: str | None = None,
    args_as_object: bool = True,
    finish_reason: str = "stop",
    prompt_tokens: int = 20,
    model: str = FAKE_MODEL,
) -> list[dict[str, Any]]:
    """A tool call as Workers AI streams it: name first, arguments as a JSON *object*, then a
    null finaliser fragment, and finish_reason "stop" (not "tool_calls") on the usage chunk."""
    chunks: list[dict[str, Any]] = []
    if text:
        chunks.append(
            chunk({"role": "assistant", "content": text}, usage=usage_block(prompt_tokens, 1))
        )
    args: Any = dict(arguments) if args_as_object else orjson.dumps(dict(arguments)).decode()
    chunks += [
        chunk(
            {
                "tool_calls": [
                    {"id": call_id, "type": "function", "index": 0, "function": {"name": name}}
                ]
            },
            usage=usage_block(prompt_tokens, 2),
            model=model,
        ),
        chunk(
            {"tool_calls": [{"index": 0, "function": {"arguments": args}}]},
            usage=usage_block(prompt_tokens, 8),
            model=model,
        ),
        chunk(
            {"tool_calls": [{"id": None, "type": None, "index": 0, "function": {"name": None}}]},
            usage=usage_block(prompt_tokens, 9),
            model=model,
        ),
        chunk({}, finish_reason=finish_reason, usage=usage_block(prompt_tokens, 10), model=model),
    ]
    return chunks


def completion(
    text: str | None = None,
    *,
    reasoning: str | None = None,
    reasoning_field: str = "reasoning_content",
    tool_calls: Sequence[Mapping[str, Any]] = (),
    finish_reason: str = "stop",
    prompt_tokens: int = 20,
    completion_tokens: int = 5,
    cached_tokens: int = 0,
    model: str = FAKE_MODEL,
) -> dict[str, Any]:
    """A non-streaming `chat.completion`."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning is not None:
        message[reasoning_field] = reasoning
    if tool_calls:
        message["tool_calls"] = [dict(call) for call in tool_calls]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage_block(prompt_tokens, completion_tokens, cached_tokens),
    }


def function_call(
    name: str, arguments: Mapping[str, Any], *, call_id: str = "chatcmpl-tool-0001"
) -> dict[str, Any]:
    """A non-streaming tool call with arguments as an object (the Workers AI quirk)."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": dict(arguments)},
    }


def cf_error(code: int, message: str) -> dict[str, Any]:
    """The Cloudflare v4 error envelope (Workers AI REST, also through the gateway)."""
    return {"result": None, "success": False, "errors": [{"code": code, "message": message}]}


def gateway_error(code: int, message: str) -> dict[str, Any]:
    """AI Gateway's own error shape (`error`, not `errors`)."""
    return {"success": False, "error": [{"code": code, "message": message}]}


def workers_ai_model(name: str, **properties: Any) -> dict[str, Any]:
    """One entry of Cloudflare's model search, e.g. `workers_ai_model("@cf/x/y",
    context_window="131072", function_calling="true", price=[...])`."""
    return {
        "name": name,
        "description": "d",
        "task": {"name": "Text Generation"},
        "properties": [{"property_id": key, "value": value} for key, value in properties.items()],
    }


CAPACITY_ERROR = cf_error(3040, "Capacity temporarily exceeded, please try again.")
DAILY_QUOTA_ERROR = cf_error(
    3036, "You have used up your daily free allocation of 10,000 neurons, please upgrade."
)


# ---- scripted replies ------------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted upstream answer."""

    kind: str  # "stream", "json" or "raw"
    status: int = 200
    body: Any = None
    chunks: Sequence[Any] = ()
    done: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    # Seconds before the status line (slow first byte), before the first body byte, between chunks.
    delay: float = 0.0
    first_chunk_delay: float = 0.0
    chunk_delay: float = 0.0
    # Close the connection abruptly after this many chunks.
    drop_after: int | None = None

    @classmethod
    def stream(
        cls,
        chunks: Sequence[Any],
        *,
        done: bool = True,
        delay: float = 0.0,
        first_chunk_delay: float = 0.0,
        chunk_delay: float = 0.0,
        drop_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """SSE: dict chunks become `data: <json>`, str chunks are sent as raw lines."""
        return cls(
            "stream",
            chunks=list(chunks),
            done=done,
            delay=delay,
            first_chunk_delay=first_chunk_delay,
            chunk_delay=chunk_delay,
            drop_after=drop_after,
            headers=dict(headers or {}),
            content_type="text/event-stream",
        )

    @classmethod
    def json(
        cls,
        body: Any,
        *,
        status: int = 200,
        delay: float = 0.0,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        return cls("json", status=status, body=body, delay=delay, headers=dict(headers or {}))

    @classmethod
    def error(
        cls,
        status: int,
        body: Any,
        headers: Mapping[str, str] | None = None,
        *,
        delay: float = 0.0,
    ) -> Reply:
        """An error answer; `body` is JSON (dict) or raw text (str/bytes)."""
        if isinstance(body, str | bytes):
            raw = body.encode() if isinstance(body, str) else body
            return cls(
                "raw",
                status=status,
                body=raw,
                delay=delay,
                headers=dict(headers or {}),
                content_type="text/plain",
            )
        return cls("json", status=status, body=body, delay=delay, headers=dict(headers or {}))

    @classmethod
    def hang(cls, seconds: float = 3600.0) -> Reply:
        """Never answers in time: for timeouts and cancellation."""
        return cls.stream([], delay=seconds)

    @classmethod
    def from_json(cls, spec: Mapping[str, Any]) -> Reply:
        """Build from a `POST /_fake/enqueue` body."""
        fields = dict(spec)
        kind = fields.pop("kind", "json")
        if kind == "stream":
            return cls.stream(fields.pop("chunks", []), **fields)
        if kind == "error":
            return cls.error(fields.pop("status"), fields.pop("body"), fields.pop("headers", None))
        return cls.json(fields.pop("body", None), **fields)


@dataclass
class RecordedRequest:
    """What the fake received, for exact assertions on the upstream request."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    size: int
    received_at: float
    cancelled: bool = False
    finished: bool = False
    # Body bytes of a streamed answer written so far (a stalled reader stops this growing).
    sent: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
            "size": self.size,
            "cancelled": self.cancelled,
            "finished": self.finished,
            "sent": self.sent,
        }


@dataclass
class EchoOptions:
    """How the default echo behaviour answers."""

    delay: float = 0.0
    reasoning: bool = False
    reasoning_field: str = "reasoning_content"
    done: bool = True
    json_for_stream: bool = False
    pieces: int = 3


# ---- the server ------------------------------------------------------------------------------


class FakeUpstream:
    """An aiohttp server on 127.0.0.1 answering scripted replies, then echo."""

    def __init__(self, echo: EchoOptions | None = None) -> None:
        self.requests: list[RecordedRequest] = []
        self.echo = echo or EchoOptions()
        self._queue: deque[Reply] = deque()
        # Answers from the request body once the queue is empty (instead of echo).
        self.responder: Callable[[Mapping[str, Any]], Reply] | None = None
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self.port = 0
        # What `GET {base}/models` lists (model ids).
        self.listed_models: list[str] = [FAKE_MODEL]
        # Cloudflare's model search: its entries, and its page size (the real endpoint
        # reportedly ignores `per_page`, so the fake does too).
        self.workers_ai_models: list[dict[str, Any]] = []
        self.search_page_size = 50

    # -- scripting
    def enqueue(self, *replies: Reply) -> None:
        self._queue.extend(replies)

    def reset(self) -> None:
        self._queue.clear()
        self.requests.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        return len(self._queue)

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> bool:
        """Wait until `predicate(self)` holds (e.g. a request got cancelled)."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.05))
        return True

    # -- lifecycle
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/_fake/requests", self._list_requests)
        app.router.add_post("/_fake/enqueue", self._enqueue_from_http)
        app.router.add_post("/_fake/reset", self._reset_from_http)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        # handler_cancellation: a client that goes away cancels our handler, which we record.
        self._runner = web.AppRunner(
            self.app(), handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @contextlib.contextmanager
    def serving_in_thread(self) -> Iterator[FakeUpstream]:
        """Serve from a thread with its own event loop, for code under test that calls
        `asyncio.run` itself (the CLI's login check, `models --remote`). Read `requests` once
        that code has returned."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
                return
            finally:
                started.set()
            loop.run_forever()

        thread = threading.Thread(target=serve, name="fake-upstream", daemon=True)
        thread.start()
        started.wait()
        if failure:
            loop.close()
            raise failure[0]
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- control endpoints (for use from another process)
    async def _list_requests(self, request: web.Request) -> web.Response:
        return web.json_response(
            [r.as_json() for r in self.requests], dumps=lambda v: orjson.dumps(v).decode()
        )

    async def _enqueue_from_http(self, request: web.Request) -> web.Response:
        spec = orjson.loads(await request.read())
        for item in spec if isinstance(spec, list) else [spec]:
            self.enqueue(Reply.from_json(item))
        return web.json_response({"pending": self.pending})

    async def _reset_from_http(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"pending": 0})

    # -- the fake API
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            size=len(raw),
            received_at=time.monotonic(),
        )
        self.requests.append(record)
        self._changed.set()
        try:
            response = await self._answer(request, body, record)
            record.finished = True
            return response
        except (asyncio.CancelledError, ConnectionResetError):
            record.cancelled = True
            self._changed.set()
            raise
        finally:
            self._changed.set()

    async def _answer(
        self, request: web.Request, body: Any, record: RecordedRequest
    ) -> web.StreamResponse:
        if (refusal := wrong_model_prefix(request.path, body)) is not None:
            return await self._send(request, refusal, record)
        if self._queue:
            return await self._send(request, self._queue.popleft(), record)
        if request.method == "GET" and request.path.endswith("/ai/models/search"):
            return web.json_response(self._search_page(request.query))
        if request.method == "GET" and request.path.endswith("/models"):
            return web.json_response(self._model_listing(request))
        if request.method != "POST":
            return web.json_response(cf_error(7001, "Method not supported"), status=405)
        is_anthropic = request.path.endswith("/v1/messages") or request.path.endswith("/messages")
        if self.responder is not None and isinstance(body, dict):
            reply = self.responder(body)
        elif is_anthropic:
            reply = anthropic_echo_reply(body if isinstance(body, dict) else {})
        elif request.path.endswith("/chat/completions"):
            reply = echo_reply(body if isinstance(body, dict) else {}, self.echo)
        else:
            return web.json_response(
                cf_error(7003, f"Could not route to {request.path}"), status=404
            )
        return await self._send(request, reply, record)

    def _search_page(self, query: Mapping[str, str]) -> dict[str, Any]:
        """One page of Cloudflare's model search (v4 envelope, `result_info` for paging)."""
        page = max(1, int(query.get("page", "1")))
        size = self.search_page_size
        result = self.workers_ai_models[(page - 1) * size : page * size]
        info = {
            "page": page,
            "per_page": size,
            "count": len(result),
            "total_count": len(self.workers_ai_models),
        }
        return {"success": True, "result": result, "result_info": info, "errors": []}

    def _model_listing(self, request: web.Request) -> dict[str, Any]:
        """`GET /v1/models` as OpenAI answers it, or Anthropic when asked with its header."""
        if "anthropic-version" in request.headers:
            data = [{"id": m, "type": "model", "display_name": m} for m in self.listed_models]
            first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
            return {"data": data, "has_more": False, "first_id": first, "last_id": last}
        listed = [{"id": m, "object": "model", "owned_by": "fake"} for m in self.listed_models]
        return {"object": "list", "data": listed}

    async def _send(
        self, request: web.Request, reply: Reply, record: RecordedRequest
    ) -> web.StreamResponse:
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.kind != "stream":
            payload = reply.body if reply.kind == "raw" else orjson.dumps(reply.body)
            return web.Response(
                status=reply.status,
                body=payload,
                headers={"Content-Type": reply.content_type, **reply.headers},
            )
        response = web.StreamResponse(
            status=reply.status,
            headers={
                "Content-Type": reply.content_type,
                "Cache-Control": "no-cache",
                **reply.headers,
            },
        )
        await response.prepare(request)
        if reply.first_chunk_delay:
            await asyncio.sleep(reply.first_chunk_delay)
        for sent, item in enumerate(reply.chunks):
            if reply.drop_after is not None and sent >= reply.drop_after:
                _drop(request)
                return response
            if sent and reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            data = _sse_bytes(item)
            await response.write(data)
            record.sent += len(data)
        if reply.drop_after is not None and reply.drop_after >= len(reply.chunks):
            _drop(request)
            return response
        if reply.done:
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


COMPAT_PATH = "/compat/chat/completions"
WORKERS_AI_PATH = "/workers-ai/v1/chat/completions"
_WORKERS_AI_IDS = ("@cf/", "@hf/")


def wrong_model_prefix(path: str, body: Any) -> Reply | None:
    """AI Gateway's answer to a model id with the wrong prefix for its path, or None.

    `/compat` reads the provider from the id's first segment, so a bare `@cf/…` id names the
    provider "@cf" (400, code 2008); the Workers AI path knows only bare ids, so a
    `workers-ai/@cf/…` one is no model there (400, code 5007)."""
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str):
        return None
    if path.endswith(COMPAT_PATH) and model.startswith(_WORKERS_AI_IDS):
        return Reply.error(400, gateway_error(2008, "Invalid provider"))
    if path.endswith(WORKERS_AI_PATH) and not model.startswith(_WORKERS_AI_IDS):
        return Reply.error(400, cf_error(5007, f"No such model {model} or task"))
    return None


def _drop(request: web.Request) -> None:
    """Cut the TCP connection mid-body, as a crashed upstream would."""
    transport = request.transport
    if transport is not None:
        transport.abort()


def _sse_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    return b"data: " + orjson.dumps(item) + b"\n\n"


# ---- echo ------------------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, Mapping) and part.get("type") == "tool_result":
                parts.append(_text_of(part.get("content")))
        return "\n".join(parts)
    return ""


def _last_message(messages: Any) -> Mapping[str, Any]:
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, Mapping) and message.get("role") in ("user", "tool"):
                return message
    return {}


def _offered_tools(body: Mapping[str, Any]) -> list[str]:
    names = []
    for tool in body.get("tools") or []:
        if isinstance(tool, Mapping):
            function = tool.get("function")
            name = function.get("name") if isinstance(function, Mapping) else tool.get("name")
            if isinstance(name, str):
                names.append(name)
    return names


def echo_text(body: Mapping[str, Any]) -> tuple[str, str | None]:
    """What echo answers: (text, bash command or None)."""
    last = _last_message(body.get("messages"))
    text = _text_of(last.get("content")).strip()
    if last.get("role") == "tool" or _mentions_tool_result(last):
        return f"Tool result received: {text[:500]}", None
    if RUN_BASH_MARKER in text and "Bash" in _offered_tools(body):
        command = text.split(RUN_BASH_MARKER, 1)[1].strip().splitlines()[0].strip()
        return "", command
    return f"echo: {text[-2000:]}", None


def _mentions_tool_result(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(p, Mapping) and p.get("type") == "tool_result" for p in content
    )


def echo_reply(body: Mapping[str, Any], options: EchoOptions) -> Reply:
    """The default answer to an OpenAI-style request."""
    text, command = echo_text(body)
    model = str(body.get("model") or FAKE_MODEL)
    prompt_tokens = max(1, len(orjson.dumps(body.get("messages") or [])) // 4)
    reasoning = f"The user wants an echo of {len(text)} characters." if options.reasoning else None
    streaming = bool(body.get("stream")) and not options.json_for_stream
    if command is not None:
        arguments = {"command": command, "description": "Run the requested command"}
        if streaming:
            chunks = tool_call_stream("Bash", arguments, prompt_tokens=prompt_tokens, model=model)
            return Reply.stream(chunks, done=options.done, delay=options.delay)
        return Reply.json(
            completion(
                None,
                tool_calls=[function_call("Bash", arguments)],
                prompt_tokens=prompt_tokens,
                model=model,
            ),
            delay=options.delay,
        )
    if streaming:
        chunks = text_stream(
            text,
            reasoning=reasoning,
            reasoning_field=options.reasoning_field,
            pieces=options.pieces,
            prompt_tokens=prompt_tokens,
            model=model,
        )
        return Reply.stream(chunks, done=options.done, delay=options.delay)
    return Reply.json(
        completion(
            text,
            reasoning=reasoning,
            reasoning_field=options.reasoning_field,
            prompt_tokens=prompt_tokens,
            completion_tokens=max(1, len(text) // 4),
            model=model,
        ),
        delay=options.delay,
    )


def anthropic_message(text: str, *, model: str, input_tokens: int = 20) -> dict[str, Any]:
    """An Anthropic Messages response, for the pass-through provider."""
    return {
        "id": "msg_fakeupstream0000000000",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": max(1, len(text) // 4)},
    }


def anthropic_events(text: str, *, model: str, input_tokens: int = 20) -> list[str]:
    """The same message as Anthropic SSE frames."""
    message = anthropic_message("", model=model, input_tokens=input_tokens)
    message["content"] = []
    message["stop_reason"] = None
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": text},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": max(1, len(text) // 4)},
        },
        {"type": "message_stop"},
    ]
    return [f"event: {e['type']}\ndata: {orjson.dumps(e).decode()}\n\n" for e in events]


def anthropic_echo_reply(body: Mapping[str, Any]) -> Reply:
    text = "echo: " + _text_of(_last_message(body.get("messages")).get("content")).strip()
    model = str(body.get("model") or "")
    if body.get("stream"):
        return Reply.stream(anthropic_events(text, model=model), done=False)
    return Reply.json(anthropic_message(text, model=model))


# ---- standalone ------------------------------------------------------------------------------

SCRIPTS: dict[str, tuple[EchoOptions, list[Reply]]] = {
    "echo": (EchoOptions(), []),
    "reasoning-echo": (EchoOptions(reasoning=True), []),
    "slow-echo": (EchoOptions(delay=3.0), []),
    "no-done-echo": (EchoOptions(done=False), []),
    "json-for-stream": (EchoOptions(json_for_stream=True), []),
    "capacity-once": (
        EchoOptions(),
        [Reply.error(429, CAPACITY_ERROR)],
    ),
    "daily-quota": (EchoOptions(), [Reply.error(429, DAILY_QUOTA_ERROR)] * 1000),
}


async def _serve(port: int, script: str) -> None:
    echo, replies = SCRIPTS[script]
    fake = FakeUpstream(echo)
    fake.enqueue(*replies)
    await fake.start(port=port)
    print(f"listening on {fake.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--script", choices=sorted(SCRIPTS), default="echo")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.port, args.script))
    return 0


if __name__ == "__main__":
    sys.exit(main())
