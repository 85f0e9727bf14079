"""A fast mock of an OpenAI-compatible chat/completions upstream, for benchmarks only.

Plain asyncio streams and pre-encoded replies instead of aiohttp: the mock shares the machine's
two cores with the proxy and the load client, so it must cost as little as possible and the
same for the direct and the proxied request.

    python bench/mock_upstream.py [--port 0] [--max-seconds 3600]

prints `listening on http://127.0.0.1:PORT` and serves until SIGINT/SIGTERM or --max-seconds.

Any `POST .../chat/completions` is answered: with `"stream": true` an SSE stream of
`chunks` content deltas of `chunk_chars` characters (`delay_ms` apart), optionally a tool call
whose arguments come in `tool_fragments` pieces, a finish chunk, a final usage chunk and
`[DONE]`; otherwise one `chat.completion` with the same content. The reply shape is set with
`POST /_mock/config` (JSON, fields of `MockConfig`); `GET /_mock/stats` counts requests and
body bytes, `POST /_mock/stats/reset` zeroes them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import orjson

HOST = "127.0.0.1"
CHAT_PATH_SUFFIX = "/chat/completions"
CREATED = 1_760_000_000
TOOL_NAME = "Bash"
TOOL_CALL_ID = "call_bench0001"
TOOL_ARGUMENTS = orjson.dumps(
    {"command": "ls -la /tmp/bench && wc -l *.py", "description": "List the bench files"}
).decode()
# Text the content deltas are cut from: mixed ASCII and a few multi-byte characters, so the
# proxy's UTF-8 handling does real work.
TEXT_SOURCE = (
    "The proxy should be invisible: bytes in, bytes out, nothing slow in between. "
    "Naïve code copies; good code streams — «vite». "
)
MAX_CHUNKS = 100_000
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class MockConfig:
    """What the next replies look like."""

    chunks: int = 100
    chunk_chars: int = 4
    delay_ms: float = 0.0
    tool_call: bool = False
    tool_fragments: int = 24
    prompt_tokens: int = 30_000

    def checked(self) -> MockConfig:
        if not 1 <= self.chunks <= MAX_CHUNKS:
            raise ValueError(f"chunks must be 1..{MAX_CHUNKS}")
        if not 1 <= self.chunk_chars <= 1000:
            raise ValueError("chunk_chars must be 1..1000")
        if not 0 <= self.delay_ms <= 1000:
            raise ValueError("delay_ms must be 0..1000")
        if not 1 <= self.tool_fragments <= len(TOOL_ARGUMENTS):
            raise ValueError(f"tool_fragments must be 1..{len(TOOL_ARGUMENTS)}")
        return self

    def pieces(self) -> list[str]:
        """The content deltas, in order."""
        repeats = -(-self.chunks * self.chunk_chars // len(TEXT_SOURCE))
        text = TEXT_SOURCE * repeats
        step = self.chunk_chars
        return [text[i * step : (i + 1) * step] for i in range(self.chunks)]

    def expected_text(self) -> str:
        return "".join(self.pieces())

    def streamed_chunks(self) -> int:
        """Upstream chat.completion.chunk events per streamed reply ([DONE] not counted)."""
        tool = 1 + self.tool_fragments if self.tool_call else 0
        return 1 + self.chunks + tool + 2  # role, content, tool, finish, usage


def _tool_fragments(count: int) -> list[str]:
    size = -(-len(TOOL_ARGUMENTS) // count)
    return [TOOL_ARGUMENTS[i : i + size] for i in range(0, len(TOOL_ARGUMENTS), size)]


def _usage(config: MockConfig) -> dict[str, int]:
    completion = config.chunks + (config.tool_fragments if config.tool_call else 0)
    return {
        "prompt_tokens": config.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": config.prompt_tokens + completion,
    }


def stream_events(config: MockConfig, model: str) -> list[bytes]:
    """The SSE events of one streamed reply, each already framed as an HTTP/1.1 chunk."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    payloads = [chunk({"role": "assistant", "content": ""})]
    payloads += [chunk({"content": piece}) for piece in config.pieces()]
    if config.tool_call:
        payloads.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": TOOL_CALL_ID,
                            "type": "function",
                            "function": {"name": TOOL_NAME, "arguments": ""},
                        }
                    ]
                }
            )
        )
        payloads += [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
            for part in _tool_fragments(config.tool_fragments)
        ]
    payloads.append(chunk({}, "tool_calls" if config.tool_call else "stop"))
    usage_chunk = chunk({})
    usage_chunk["choices"] = []
    usage_chunk["usage"] = _usage(config)
    payloads.append(usage_chunk)
    events = [b"data: " + orjson.dumps(p) + b"\n\n" for p in payloads]
    events.append(b"data: [DONE]\n\n")
    return [b"%x\r\n%s\r\n" % (len(e), e) for e in events]


def completion_body(config: MockConfig, model: str) -> bytes:
    """One non-streamed chat.completion."""
    message: dict[str, Any] = {"role": "assistant", "content": config.expected_text()}
    if config.tool_call:
        message["tool_calls"] = [
            {
                "id": TOOL_CALL_ID,
                "type": "function",
                "function": {"name": TOOL_NAME, "arguments": TOOL_ARGUMENTS},
            }
        ]
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if config.tool_call else "stop",
                }
            ],
            "usage": _usage(config),
        }
    )


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
STREAM_END = b"0\r\n\r\n"


def _response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class BadRequest(Exception):
    """The client sent something this mock does not parse; the connection is closed."""


class MockUpstream:
    """Serves connections; replies are cached per (config, model, stream)."""

    def __init__(self) -> None:
        self.config = MockConfig()
        self._cache: dict[tuple[MockConfig, str, bool], Any] = {}
        self.requests = 0
        self.connections = 0
        self.body_bytes = 0
        self.max_body_bytes = 0

    def configure(self, changes: dict[str, Any]) -> None:
        known = {f.name for f in fields(MockConfig)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown config fields: {', '.join(sorted(unknown))}")
        self.config = replace(MockConfig(), **changes).checked()
        self._cache.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "connections": self.connections,
            "body_bytes": self.body_bytes,
            "max_body_bytes": self.max_body_bytes,
            "config": asdict(self.config),
            "streamed_chunks_per_reply": self.config.streamed_chunks(),
            "expected_text": self.config.expected_text(),
        }

    async def handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    writer.write(_response("431 Request Header Fields Too Large", b"{}"))
                    return
                method, path, headers = _parse_head(head)
                body = await _read_body(reader, headers)
                keep_alive = headers.get(b"connection", b"").lower() != b"close"
                await self._dispatch(method, path, body, writer)
                if not keep_alive:
                    return
        except (BadRequest, ValueError):
            with contextlib.suppress(ConnectionError):
                writer.write(_response("400 Bad Request", b'{"error":"bad request"}'))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _dispatch(
        self, method: bytes, path: bytes, body: bytes, writer: asyncio.StreamWriter
    ) -> None:
        if method == b"POST" and path.split(b"?", 1)[0].endswith(CHAT_PATH_SUFFIX.encode()):
            await self._chat(body, writer)
        elif method == b"POST" and path == b"/_mock/config":
            try:
                self.configure(orjson.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                writer.write(_response("400 Bad Request", orjson.dumps({"error": str(exc)})))
            else:
                writer.write(_response("200 OK", orjson.dumps(self.stats())))
        elif method == b"GET" and path == b"/_mock/stats":
            writer.write(_response("200 OK", orjson.dumps(self.stats())))
        elif method == b"POST" and path == b"/_mock/stats/reset":
            self.requests = self.connections = self.body_bytes = self.max_body_bytes = 0
            writer.write(_response("200 OK", b"{}"))
        else:
            writer.write(_response("404 Not Found", b'{"error":"not found"}'))
        await writer.drain()

    async def _chat(self, body: bytes, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        self.body_bytes += len(body)
        self.max_body_bytes = max(self.max_body_bytes, len(body))
        # A real upstream parses the whole request; so does the mock, the same for both sides.
        request = orjson.loads(body)
        model = str(request.get("model", "bench-model"))
        stream = request.get("stream") is True
        config = self.config
        key = (config, model, stream)
        reply = self._cache.get(key)
        if reply is None:
            reply = stream_events(config, model) if stream else completion_body(config, model)
            self._cache[key] = reply
        delay = config.delay_ms / 1000
        if not stream:
            if delay > 0:
                # The model generates the same tokens whether or not it streams them.
                await asyncio.sleep(delay * config.chunks)
            writer.write(_response("200 OK", reply))
            return
        writer.write(STREAM_HEAD)
        if delay <= 0:
            for event in reply:
                writer.write(event)
            writer.write(STREAM_END)
            return
        # Paced like a model generating tokens: each chunk leaves on its own (the role chunk
        # goes with the first content chunk, so the delay never counts in time to first delta).
        for position, event in enumerate(reply[:-1]):
            writer.write(event)
            if position > 0:
                await writer.drain()
                await asyncio.sleep(delay)
        writer.write(reply[-1])
        writer.write(STREAM_END)


def _parse_head(head: bytes) -> tuple[bytes, bytes, dict[bytes, bytes]]:
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise BadRequest("request line")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise BadRequest("header line")
        headers[name.strip().lower()] = value.strip()
    return parts[0], parts[1], headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[bytes, bytes]) -> bytes:
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        parts: list[bytes] = []
        size_total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected
                return b"".join(parts)
            size_total += size
            if size_total > MAX_BODY_BYTES:
                raise BadRequest("body too large")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(headers.get(b"content-length", b"0"))
    if not 0 <= length <= MAX_BODY_BYTES:
        raise BadRequest("content-length")
    return await reader.readexactly(length) if length else b""


async def serve(port: int, max_seconds: float) -> None:
    mock = MockUpstream()
    server = await asyncio.start_server(
        mock.handle_connection, HOST, port, limit=MAX_HEADER_BYTES, backlog=512
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://{HOST}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max_seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--max-seconds", type=float, default=3600.0, help="exit after this long, whatever happens"
    )
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
