"""Hostile and broken clients: every answer is a 2xx or an Anthropic-shaped 4xx (never a 5xx,
a traceback or aiohttp's text page quoting the request), and the proxy serves the next normal
request afterwards. Malformed HTTP goes over raw sockets to 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import threading
import zlib
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cc_nemo.proxy.app import create_app, start_proxy
from cc_nemo.proxy.middlewares import INTERNAL_ERROR
from cc_nemo.translate.errors import AnthropicError, ErrorReply
from cc_nemo.translate.request import MAX_NESTING_DEPTH
from tests.fake_upstream import FakeUpstream
from tests.fixtures import SESSION_TOKEN, ProxyUnderTest, proxy_settings
from tests.translate.test_hostile_inputs import hostile_bodies

T = TypeVar("T")
MiB = 1024 * 1024
NORMAL = {"model": "claude-x", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}


# ---- a minimal HTTP/1.1 client over a raw socket ----------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def error_type(self) -> str:
        return self.json()["error"]["type"]


class ProtocolViolation(AssertionError):
    """The proxy's answer is not well-formed HTTP/1.1 (e.g. a status line inside a body)."""


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, code, *_ = lines[0].split(" ", 2)
    if not version.startswith("HTTP/1."):
        raise ProtocolViolation(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    raw = head
    if headers.get("transfer-encoding") == "chunked":
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            raw += size_line
            try:
                size = int(size_line.strip().split(b";")[0], 16)
            except ValueError:
                raise ProtocolViolation(f"bad chunk size line {size_line[:60]!r}") from None
            chunk = await reader.readexactly(size + 2)
            raw += chunk
            if size == 0:
                break
            parts.append(chunk[:-2])
        body = b"".join(parts)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
        raw += body
    else:
        body = await reader.read()
        raw += body
    return Answer(int(code), headers, body, raw)


async def send_raw(port: int, data: bytes, *, timeout: float = 10.0) -> Answer:
    """One request's bytes, as they are; the first answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(read_answer(reader), timeout)
    finally:
        writer.close()


def http_request(
    body: bytes = b"",
    *,
    method: str = "POST",
    path: str = "/v1/messages",
    headers: list[tuple[str, bytes]] | None = None,
    auth: bytes | None = SESSION_TOKEN.encode(),
    content_length: bool = True,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    if auth is not None:
        lines.append(b"Authorization: Bearer " + auth)
    if body:
        lines.append(b"Content-Type: application/json")
    if content_length:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines += [name.encode() + b": " + value for name, value in headers or []]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def assert_anthropic_answer(answer: Answer, *, secret: bytes | None = None) -> None:
    """A 2xx, or a 4xx whose body is Anthropic's error JSON; nothing of `secret` echoed."""
    assert answer.status < 500, answer.raw[:500]
    assert b"Traceback" not in answer.raw
    if secret is not None:
        assert secret not in answer.raw
    if answer.status >= 400:
        assert answer.headers["content-type"].startswith("application/json"), answer.raw[:300]
        payload = answer.json()
        assert payload["type"] == "error"
        assert isinstance(payload["error"]["type"], str) and payload["error"]["type"]
        assert isinstance(payload["error"]["message"], str) and payload["error"]["message"]
        assert payload["request_id"] == answer.headers["request-id"]


async def assert_serves_next(port: int) -> None:
    answer = await send_raw(port, http_request(orjson.dumps(NORMAL)))
    assert answer.status == 200, answer.raw[:300]
    assert answer.json()["content"][0]["text"] == "echo: hi"


async def post(proxy: ProxyUnderTest, body: bytes, **kwargs: Any) -> Answer:
    answer = await send_raw(proxy.running.port, http_request(body, **kwargs))
    assert_anthropic_answer(answer)
    return answer


def deep_json(depth: int) -> bytes:
    """`depth` nested objects as JSON text (orjson refuses to write past 255)."""
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def with_tool_input(raw_input: bytes) -> bytes:
    return (
        b'{"model":"claude-x","max_tokens":20,"messages":[{"role":"user","content":"go"},'
        b'{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"Bash","input":'
        + raw_input
        + b'}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1",'
        b'"content":"ok"}]}]}'
    )


def with_tool_schema(raw_schema: bytes) -> bytes:
    return (
        b'{"model":"claude-x","max_tokens":20,"messages":[{"role":"user","content":"hi"}],'
        b'"tools":[{"name":"Deep","input_schema":' + raw_schema + b"}]}"
    )


def request_body(**fields: Any) -> bytes:
    return orjson.dumps({**NORMAL, **fields})


# ---- the cases, one by one -----------------------------------------------------------


@pytest.mark.parametrize("value", [5, True, 1.5, "END", {"x": 1}, ["END", 7]])
async def test_bad_stop_sequences_are_a_400_naming_the_field(
    proxy: ProxyUnderTest, value: object
) -> None:
    answer = await post(proxy, request_body(stop_sequences=value))
    assert answer.status == 400 and answer.error_type == "invalid_request_error"
    assert answer.json()["error"]["message"].startswith("stop_sequences")
    assert proxy.fake.requests == []
    await assert_serves_next(proxy.running.port)


@pytest.mark.parametrize("fmt", [["date-time"], {"x": 1}])
async def test_a_list_or_object_schema_format_is_dropped_not_a_500(
    proxy: ProxyUnderTest, fmt: object
) -> None:
    tools = [{"name": "Clock", "input_schema": {"type": "object", "format": fmt}}]
    output = {"format": {"type": "json_schema", "schema": {"type": "object", "format": fmt}}}
    answer = await post(proxy, request_body(tools=tools, output_config=output))
    assert answer.status == 200
    sent = proxy.fake.requests[-1].body
    assert "format" not in sent["tools"][0]["function"]["parameters"]
    assert "format" not in sent["response_format"]["json_schema"]["schema"]


@pytest.mark.parametrize("depth", [100, 200, 254, 256, 300, 1000, 1023, 1025, 10_000])
@pytest.mark.parametrize("where", ["schema", "tool_input"])
async def test_any_nesting_depth_is_answered_with_a_2xx_or_a_clean_400(
    proxy: ProxyUnderTest, depth: int, where: str
) -> None:
    build = with_tool_schema if where == "schema" else with_tool_input
    answer = await post(proxy, build(deep_json(depth)))
    if depth <= MAX_NESTING_DEPTH - 6:
        assert answer.status == 200
    else:
        assert answer.status == 400 and answer.error_type == "invalid_request_error"
        assert proxy.fake.requests == []
    await assert_serves_next(proxy.running.port)


@pytest.mark.parametrize("header", [b"Authorization: Bearer ", b"x-api-key: "])
async def test_credentials_that_are_not_utf8_are_a_401(
    proxy: ProxyUnderTest, header: bytes
) -> None:
    name, _, prefix = header.decode().partition(": ")
    answer = await post(
        proxy,
        orjson.dumps(NORMAL),
        auth=None,
        headers=[(name, prefix.encode() + b"\xff\xfe\x80tok")],
    )
    assert answer.status == 401 and answer.error_type == "authentication_error"
    await assert_serves_next(proxy.running.port)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_what_its_content_encoding_says_is_a_400(
    proxy: ProxyUnderTest, encoding: str
) -> None:
    answer = await post(
        proxy, orjson.dumps(NORMAL), headers=[("Content-Encoding", encoding.encode())]
    )
    assert answer.status == 400 and answer.error_type == "invalid_request_error"
    assert "Content-Encoding" in answer.json()["error"]["message"]
    await assert_serves_next(proxy.running.port)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_really_compressed_body_is_served(proxy: ProxyUnderTest, encoding: str) -> None:
    raw = orjson.dumps(NORMAL)
    body = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    answer = await post(proxy, body, headers=[("Content-Encoding", encoding.encode())])
    assert answer.status == 200


SECRET = b"sk-secret-" + b"7" * 40


@pytest.mark.parametrize(
    ("case", "data"),
    [
        (
            "over-long Authorization",
            http_request(b"{}", auth=SECRET + b"x" * 9000),
        ),
        (
            "over-long custom header",
            http_request(b"{}", headers=[("X-Note", SECRET * 200)]),
        ),
        (
            "over-long request line",
            b"GET /" + SECRET * 300 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        ),
        (
            "too many headers",
            http_request(b"{}", headers=[(f"X-H{i}", SECRET) for i in range(300)]),
        ),
        (
            "duplicate Content-Length",
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + SECRET
            + b"\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        ),
        (
            "bad chunk size",
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n" + SECRET + b"\r\n",
        ),
        (
            "chunked and Content-Length",
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 5\r\n\r\n0\r\n\r\n",
        ),
        (
            "unknown Transfer-Encoding",
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: " + SECRET
            + b"\r\n\r\n",
        ),
        (
            "control character in a header",
            http_request(b"{}", headers=[("X-Session", SECRET + b"\x01")]),
        ),
        (
            "space in a header name",
            http_request(b"{}", headers=[("X Bad", SECRET)]),
        ),
        ("not HTTP at all", SECRET + bytes(range(256)) + b"\r\n\r\n"),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n"),
        (
            "Content-Encoding br",
            http_request(orjson.dumps(NORMAL), headers=[("Content-Encoding", b"br")]),
        ),
        (
            "unknown Expect",
            http_request(orjson.dumps(NORMAL), headers=[("Expect", SECRET)]),
        ),
        (
            "unknown Expect on an unknown path",
            http_request(b"", path="/nope", headers=[("Expect", SECRET)]),
        ),
    ],
)  # fmt: skip
async def test_malformed_http_gets_anthropic_json_that_quotes_nothing(
    proxy: ProxyUnderTest, case: str, data: bytes
) -> None:
    answer = await send_raw(proxy.running.port, data)
    assert 400 <= answer.status < 500, (case, answer.raw[:300])
    assert_anthropic_answer(answer, secret=SECRET)
    assert answer.error_type == "invalid_request_error"
    await assert_serves_next(proxy.running.port)


async def test_duplicate_credentials_are_answered_in_json(proxy: ProxyUnderTest) -> None:
    good = SESSION_TOKEN.encode()
    for first, second in ((b"wrong", good), (good, b"wrong"), (good, good)):
        answer = await post(
            proxy,
            orjson.dumps(NORMAL),
            auth=first,
            headers=[("Authorization", b"Bearer " + second), ("x-api-key", second)],
        )
        assert answer.status in (200, 401)
    await assert_serves_next(proxy.running.port)


async def test_a_33_mib_body_is_a_413(proxy: ProxyUnderTest) -> None:
    body = request_body(messages=[{"role": "user", "content": "x" * (33 * MiB)}])
    for content_length in (True, False):
        headers = [] if content_length else [("Transfer-Encoding", b"chunked")]
        data = body if content_length else b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        answer = await post(proxy, data, headers=headers, content_length=content_length)
        assert answer.status == 413 and answer.error_type == "request_too_large"
    assert proxy.fake.requests == []
    await assert_serves_next(proxy.running.port)


@pytest.mark.parametrize(
    ("case", "body"),
    [
        ("invalid UTF-8", b'{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":"\xff\xfe"}]}'),
        ("lone surrogate", b'{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":"\\ud800"}]}'),
        ("NaN", b'{"model":"claude-x","max_tokens":NaN,"messages":[]}'),
        ("Infinity", b'{"model":"claude-x","max_tokens":5,"temperature":Infinity,"messages":[]}'),
        ("1e400", b'{"model":"claude-x","max_tokens":5,"temperature":1e400,"messages":[]}'),
        ("truncated", orjson.dumps(NORMAL)[:-7]),
        ("empty", b""),
        ("a bare string", b'"hello"'),
        ("binary", bytes(range(256)) * 4),
        ("2**70 max_tokens", b'{"model":"claude-x","max_tokens":1180591620717411303424,"messages":[{"role":"user","content":"x"}]}'),
    ],
)  # fmt: skip
async def test_bodies_that_are_not_json_we_can_use_are_a_400(
    proxy: ProxyUnderTest, case: str, body: bytes
) -> None:
    answer = await post(proxy, body)
    assert answer.status == 400 and answer.error_type == "invalid_request_error", case
    await assert_serves_next(proxy.running.port)


ODD_NAMES = ["", " ", "名前", "a" * 10_000, "a.b/c:d", "Bash", "bash", "\x00", "🔧" * 100, "-", "_"]


async def test_a_thousand_tools_and_odd_tool_names_are_served(proxy: ProxyUnderTest) -> None:
    tools = [{"name": f"tool_{i}", "input_schema": {"type": "object"}} for i in range(1000)]
    tools += [{"name": name, "description": name, "input_schema": {}} for name in ODD_NAMES]
    history = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": f"t{i}", "name": name, "input": {"n": name}}
                for i, name in enumerate(ODD_NAMES)
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": f"t{i}", "content": "ok"}
                for i in range(len(ODD_NAMES))
            ],
        },
    ]
    for choice in (None, {"type": "tool", "name": "a" * 10_000}, {"type": "any"}):
        fields: dict[str, Any] = {"tools": tools, "messages": history}
        if choice:
            fields["tool_choice"] = choice
        answer = await post(proxy, request_body(**fields))
        assert answer.status == 200
    sent = proxy.fake.requests[-1].body
    assert len(sent["tools"]) >= 1000
    assert all(len(tool["function"]["name"]) <= 64 for tool in sent["tools"])


@pytest.mark.parametrize(
    "source",
    [
        {"type": "base64", "media_type": "image/png", "data": "!!!not base64!!!"},
        {"type": "base64", "media_type": "image/png", "data": ""},
        {"type": "base64", "media_type": ["x"], "data": "AAAA"},
        {"type": "base64", "data": 5},
        {"type": "url", "url": "javascript:alert(1)"},
        {"type": "url", "url": None},
        {"type": "file", "file_id": "nope"},
        "not an object",
    ],
)
async def test_garbage_images_are_served_or_refused_cleanly(
    proxy: ProxyUnderTest, source: object
) -> None:
    image = {"type": "image", "source": source}
    content = [image, {"type": "text", "text": "what is this?"}]
    tool_result = {"type": "tool_result", "tool_use_id": "t1", "content": [image]}
    await post(proxy, request_body(messages=[{"role": "user", "content": content}]))
    await post(proxy, request_body(messages=[{"role": "user", "content": [tool_result]}]))
    await assert_serves_next(proxy.running.port)


async def test_huge_strings_everywhere_are_served_or_refused_cleanly(
    proxy: ProxyUnderTest,
) -> None:
    huge = "é" + "x" * (4 * MiB)
    for fields in (
        {"model": huge},
        {"system": huge},
        {"stop_sequences": [huge]},
        {"metadata": {"user_id": huge}},
        {"messages": [{"role": "user", "content": huge}]},
        {"tools": [{"name": "T", "description": huge, "input_schema": {"description": huge}}]},
    ):
        answer = await post(proxy, request_body(**fields))
        if answer.status >= 400:
            assert len(answer.body) < 2 * MiB or fields.get("model") == huge
    await assert_serves_next(proxy.running.port)


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
@pytest.mark.parametrize("field", [*NORMAL, "system", "tools", "tool_choice", "thinking", "stream",
                                   "stop_sequences", "output_config", "temperature", "metadata"])  # fmt: skip
async def test_wrong_types_in_every_field_are_answered_cleanly(
    proxy: ProxyUnderTest, path: str, field: str
) -> None:
    for value in (None, 0, -1, 1.5, True, "", "x", [], [1, "a", None], {}, {"type": 5}):
        await post(proxy, request_body(**{field: value}), path=path)
    await assert_serves_next(proxy.running.port)


# ---- an error after the response has begun ----------------------------------------------------


@pytest.fixture
async def committed_routes(proxy: ProxyUnderTest) -> Any:
    """The real app (middlewares and all) plus routes that fail after sending the status line."""
    app = create_app(proxy.settings)

    async def start_sse(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'event: ping\ndata: {"type":"ping"}\n\n')
        return response

    async def bug_after_commit(request: web.Request) -> web.StreamResponse:
        await start_sse(request)
        raise RuntimeError(f"secret detail {SESSION_TOKEN}")

    async def proxy_error_after_commit(request: web.Request) -> web.StreamResponse:
        await start_sse(request)
        raise ErrorReply(AnthropicError(400, "invalid_request_error", "refused late"))

    async def bug_after_the_end(request: web.Request) -> web.StreamResponse:
        response = await start_sse(request)
        await response.write_eof()
        raise RuntimeError("after the end")

    app.router.add_get("/v1/bug-after-commit", bug_after_commit)
    app.router.add_get("/v1/bug-after-the-end", bug_after_the_end)
    app.router.add_get("/v1/proxy-error-after-commit", proxy_error_after_commit)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def get(path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {SESSION_TOKEN}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/v1/bug-after-commit", {"type": "api_error", "message": INTERNAL_ERROR}),
        ("/v1/proxy-error-after-commit", {"type": "invalid_request_error", "message": "refused late"}),
    ],
)  # fmt: skip
async def test_an_error_after_the_stream_began_is_an_sse_error_event_not_a_second_response(
    committed_routes: int, path: str, error: dict[str, str]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", committed_routes)
    try:
        writer.write(get(path))
        answer = await asyncio.wait_for(read_answer(reader), 5)
        # The same connection still frames requests and answers correctly afterwards.
        writer.write(get("/v1/models"))
        following = await asyncio.wait_for(read_answer(reader), 5)
    finally:
        writer.close()
    assert answer.status == 200
    assert answer.raw.count(b"HTTP/1.") == 1
    assert SESSION_TOKEN.encode() not in answer.raw and b"Traceback" not in answer.raw
    ping, failure = answer.body.decode().strip().split("\n\n")
    assert ping.startswith("event: ping\n")
    name, data = failure.split("\n")
    assert name == "event: error"
    assert orjson.loads(data.removeprefix("data: ")) == {"type": "error", "error": error}
    assert following.status == 200 and following.json()["data"]


async def test_an_error_after_the_stream_ended_leaves_the_answer_as_it_was(
    committed_routes: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", committed_routes)
    try:
        writer.write(get("/v1/bug-after-the-end"))
        answer = await asyncio.wait_for(read_answer(reader), 5)
        writer.write(get("/v1/models"))
        following = await asyncio.wait_for(read_answer(reader), 5)
    finally:
        writer.close()
    assert answer.status == 200 and answer.raw.count(b"HTTP/1.") == 1
    assert answer.body == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert following.status == 200


# ---- property: any body, any framing headers ------------------------------------------------


class ThreadedProxy:
    """A proxy and a fake upstream on an event loop of their own, for synchronous hypothesis
    tests: `run(coro)` runs a client coroutine on that loop and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.fake = FakeUpstream()
        self.run(self.fake.start())
        self.running = self.run(start_proxy(proxy_settings(self.fake.url)))

    def run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)  # type: ignore[arg-type]

    def close(self) -> None:
        self.run(self.running.stop())
        self.run(self.fake.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def threaded_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedProxy]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    threaded = ThreadedProxy()
    try:
        yield threaded
    finally:
        threaded.close()


def _mangle(data: bytes, cut: int, byte: int) -> bytes:
    if not data:
        return bytes([byte])
    position = cut % len(data)
    return data[:position] + bytes([byte]) + data[position + 1 :]


_bodies = st.one_of(
    hostile_bodies.map(orjson.dumps),
    st.builds(
        _mangle, hostile_bodies.map(orjson.dumps), st.integers(0, 10**6), st.integers(0, 255)
    ),
    st.binary(max_size=200),
)
_auth = st.sampled_from(
    [
        [("Authorization", b"Bearer " + SESSION_TOKEN.encode())],
        [("x-api-key", SESSION_TOKEN.encode())],
        [("Authorization", b"Bearer \xff" + SESSION_TOKEN.encode())],
        [("Authorization", b"Bearer a"), ("Authorization", b"Bearer " + SESSION_TOKEN.encode())],
        [],
    ]
)
_extra_headers = st.lists(
    st.sampled_from(
        [
            ("Content-Type", b"text/plain"),
            ("Content-Type", b"\xff"),
            ("Content-Encoding", b"gzip"),
            ("Content-Encoding", b"deflate"),
            ("Content-Encoding", b"br"),
            ("Content-Encoding", b"identity"),
            ("Content-Encoding", b"x-unknown"),
            ("Expect", b"100-continue"),
            ("anthropic-beta", b"\xff\xfe"),
            ("anthropic-version", b"2023-06-01"),
            ("x-claude-code-session-id", b"\xc3\x28"),
            ("Host", b"evil.example"),
        ]
    ),
    max_size=3,
)
_paths = st.sampled_from(["/v1/messages", "/v1/messages/count_tokens", "/v1/messages?beta=true"])


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(body=_bodies, auth=_auth, headers=_extra_headers, path=_paths)
def test_any_request_gets_a_2xx_or_an_anthropic_4xx_and_the_next_one_is_served(
    threaded_proxy: ThreadedProxy,
    body: bytes,
    auth: list[tuple[str, bytes]],
    headers: list[tuple[str, bytes]],
    path: str,
) -> None:
    port = threaded_proxy.running.port
    data = http_request(body, path=path, auth=None, headers=auth + headers)
    answer = threaded_proxy.run(send_raw(port, data))
    assert_anthropic_answer(answer)
    if answer.headers.get("content-type", "").startswith("text/event-stream"):
        assert b"event: message_stop" in answer.body or b"event: error" in answer.body
    threaded_proxy.run(assert_serves_next(port))
