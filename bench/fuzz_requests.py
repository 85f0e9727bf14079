"""Send thousands of malformed requests to a real proxy and count what came back.

    python bench/fuzz_requests.py                 # 5000 requests, seed 1
    python bench/fuzz_requests.py -n 20000 --seed 7 --log /tmp/fuzz-proxy.log

The proxy is the one `cc-proxy serve` runs (`start_proxy`), in this process, in front of the
scripted fake upstream of the tests (which echoes). Requests go over raw sockets to 127.0.0.1,
so framing and headers can be as broken as the bodies: random JSON, wrong types in every field,
bad stop_sequences and schema formats, nesting up to 12 000 levels, huge strings, invalid
UTF-8, NaN, 1 000 tools, odd tool names, garbage images, broken credentials, lying
Content-Encoding, over-long and too many headers, bad chunked framing, 33 MiB bodies.

Prints one row per kind of input: how many were sent, the status codes they got, how many
answers were not Anthropic-shaped JSON (or, for a 2xx, not JSON/SSE), how many were 5xx, and
how many quoted back a marker planted in the request's headers. Then whether a normal request
is still served, and how many tracebacks the proxy logged. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cc_nemo.proxy.app import start_proxy  # noqa: E402
from tests.fake_upstream import FakeUpstream  # noqa: E402
from tests.fixtures import SESSION_TOKEN, proxy_settings  # noqa: E402

TOKEN = SESSION_TOKEN.encode()
MARKER = b"sk-fuzz-marker-5e1f"  # planted in headers: must never come back
MiB = 1024 * 1024
READ_TIMEOUT = 60.0
NORMAL: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}
FIELDS = (
    "model", "max_tokens", "messages", "system", "tools", "tool_choice", "stop_sequences",
    "stream", "temperature", "top_p", "top_k", "thinking", "output_config", "output_format",
    "metadata",
)  # fmt: skip
BLOCK_TYPES = (
    "text", "image", "tool_use", "tool_result", "thinking", "document", "search_result",
    "mid_conv_system", "tool_reference", "bogus",
)  # fmt: skip


# ---- raw HTTP --------------------------------------------------------------------------------


def http(
    body: bytes = b"",
    *,
    method: str = "POST",
    path: str = "/v1/messages",
    headers: list[tuple[bytes, bytes]] | None = None,
    auth: bytes | None = TOKEN,
    content_length: bool = True,
) -> bytes:
    lines = [method.encode() + b" " + path.encode() + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines.append(b"Connection: close")
    if auth is not None:
        lines.append(b"Authorization: Bearer " + auth)
    lines.append(b"Content-Type: application/json")
    if content_length:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines += [name + b": " + value for name, value in headers or []]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@dataclass
class Outcome:
    status: int | None  # None: no answer (connection closed or timed out)
    well_formed: bool
    echoed: bool


async def exchange(port: int, data: bytes) -> Outcome:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return Outcome(None, False, False)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), READ_TIMEOUT)
    except (OSError, asyncio.TimeoutError):
        return Outcome(None, False, False)
    finally:
        writer.close()
    return judge(raw)


def judge(raw: bytes) -> Outcome:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return Outcome(None, False, MARKER in raw)
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding") == b"chunked":
        body = dechunk(body)
    content_type = headers.get(b"content-type", b"")
    well_formed = False
    if content_type.startswith(b"text/event-stream") and status < 300:
        well_formed = body.count(b"HTTP/1.") == 0 and (
            b"event: message_stop" in body or b"event: error" in body
        )
    elif content_type.startswith(b"application/json"):
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        if status < 300:
            well_formed = isinstance(payload, dict)
        else:
            error = payload.get("error") if isinstance(payload, dict) else None
            well_formed = (
                payload.get("type") == "error"  # type: ignore[union-attr]
                and isinstance(error, dict)
                and isinstance(error.get("type"), str)
                and isinstance(error.get("message"), str)
            )
    return Outcome(status, well_formed, MARKER in raw)


def dechunk(data: bytes) -> bytes:
    out = []
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            return b"HTTP/1. (bad chunk framing)"
        if size == 0:
            break
        out.append(rest[:size])
        data = rest[size + 2 :]
    return b"".join(out)


# ---- generators ------------------------------------------------------------------------------


class Fuzz:
    """Malformed requests by kind; each generator returns the bytes to send."""

    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    def json_value(self, depth: int = 0) -> Any:
        r = self.r
        kind = r.randrange(9 if depth < 4 else 6)
        if kind == 0:
            return None
        if kind == 1:
            return r.random() < 0.5
        if kind == 2:
            return r.choice([0, -1, 1, 2**31, 2**63 - 1, 2**64 - 1, -(2**63), r.randint(-9, 9**9)])
        if kind == 3:
            return r.choice([0.5, -1e308, 1e-300, 3.14, 1.2345678901234568e29])
        if kind in (4, 5):
            return self.text(r.randrange(30))
        if kind == 6:
            return [self.json_value(depth + 1) for _ in range(r.randrange(4))]
        return {self.text(8): self.json_value(depth + 1) for _ in range(r.randrange(4))}

    def text(self, size: int) -> str:
        alphabet = 'ab zé名🔧\n\t"\\{}[]<>/\x00\x7f' + "".join(map(chr, range(0x20, 0x7F)))
        return "".join(self.r.choice(alphabet) for _ in range(size))

    def body(self, **fields: Any) -> bytes:
        return orjson.dumps({**NORMAL, "stream": self.r.random() < 0.5, **fields})

    # -- bodies

    def random_json(self) -> bytes:
        return http(orjson.dumps(self.json_value()))

    def wrong_type(self) -> bytes:
        field = self.r.choice(FIELDS)
        path = self.r.choice(["/v1/messages", "/v1/messages/count_tokens"])
        return http(self.body(**{field: self.json_value()}), path=path)

    def wrong_block(self) -> bytes:
        blocks = []
        for _ in range(self.r.randrange(1, 4)):
            block = {"type": self.r.choice(BLOCK_TYPES)}
            for key in self.r.sample(["text", "input", "content", "source", "name", "id",
                                      "tool_use_id", "is_error", "thinking"], 3):  # fmt: skip
                block[key] = self.json_value()
            blocks.append(block)
        role = self.r.choice(["user", "assistant", "system"])
        messages = [{"role": "user", "content": "go"}, {"role": role, "content": blocks}]
        return http(self.body(messages=messages))

    def bad_stop_sequences(self) -> bytes:
        value = self.r.choice([5, True, 1.5, "END", {"a": 1}, ["END", 3], [None], ["", "x"]])
        return http(self.body(stop_sequences=value))

    def schema_format(self) -> bytes:
        fmt = self.r.choice([["date-time"], {"x": 1}, [], {}, 5, "email", None])
        schema = {"type": "object", "properties": {"a": {"type": "string", "format": fmt}}}
        if self.r.random() < 0.5:
            return http(self.body(tools=[{"name": "T", "input_schema": schema}]))
        fields = {"output_config": {"format": {"type": "json_schema", "schema": schema}}}
        return http(self.body(**fields))

    def deep_nesting(self) -> bytes:
        depth = int(2 ** self.r.uniform(1, 13.6))  # 2 .. 12 000, log-uniform
        opener, closer = (b'{"a":', b"}") if self.r.random() < 0.5 else (b"[", b"]")
        nested = opener * depth + b"1" + closer * depth
        where = self.r.randrange(4)
        base = self.body()[:-1]  # without the closing brace
        if where == 0:
            data = base + b',"tools":[{"name":"Deep","input_schema":{"x":' + nested + b"}}]}"
        elif where == 1:
            data = base + b',"metadata":' + nested + b"}"
        elif where == 2:
            fmt = b'{"type":"json_schema","schema":{"x":' + nested + b"}}"
            data = base + b',"output_config":{"format":' + fmt + b"}}"
        else:
            data = (
                b'{"model":"claude-x","max_tokens":20,"messages":[{"role":"user","content":"go"},'
                b'{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"Bash",'
                b'"input":{"x":' + nested + b'}}]},{"role":"user","content":"ok"}]}'
            )
        return http(data)

    def huge_string(self) -> bytes:
        huge = "é" * self.r.randrange(1, 100) + "x" * self.r.randrange(MiB, 8 * MiB)
        field = self.r.choice(["model", "system", "content", "tool", "stop", "metadata"])
        if field == "content":
            return http(self.body(messages=[{"role": "user", "content": huge}]))
        if field == "tool":
            return http(self.body(tools=[{"name": huge[:100_000], "description": huge}]))
        if field == "stop":
            return http(self.body(stop_sequences=[huge]))
        if field == "metadata":
            return http(self.body(metadata={"user_id": huge}))
        return http(self.body(**{field: huge}))

    def bad_encoding(self) -> bytes:
        text = self.r.choice(
            [
                b'"\xff\xfe"', b'"\xc3\x28"', b'"\xed\xa0\x80"', b'"\\ud800"', b"NaN",
                b"Infinity", b"-Infinity", b"1e400", b"01", b"1.", b'"\x00"',
            ]
        )  # fmt: skip
        field = self.r.choice([b"max_tokens", b"temperature", b"model", b"system", b"metadata"])
        body = self.body()[:-1] + b',"' + field + b'":' + text + b"}"
        return http(body)

    def mangled_json(self) -> bytes:
        data = bytearray(self.body(system=self.text(50)))
        for _ in range(self.r.randrange(1, 4)):
            action = self.r.randrange(3)
            position = self.r.randrange(len(data))
            if action == 0:
                data[position] = self.r.randrange(256)
            elif action == 1:
                del data[position:]
            else:
                data.insert(position, self.r.choice(b'{}[],:"\\'))
            if not data:
                break
        return http(bytes(data))

    def many_tools(self) -> bytes:
        tools = [
            {"name": f"tool_{i}", "description": "d", "input_schema": {"type": "object"}}
            for i in range(self.r.choice([100, 1000, 2000]))
        ]
        odd = ["", " ", "名前", "a" * 5000, "a.b/c", "\x00", "🔧" * 70, "Bash", "bash", "-"]
        tools += [{"name": name, "input_schema": self.json_value()} for name in odd]
        choice = self.r.choice([None, {"type": "any"}, {"type": "tool", "name": "名前"}])
        fields: dict[str, Any] = {"tools": tools}
        if choice:
            fields["tool_choice"] = choice
        return http(self.body(**fields))

    def odd_tool_names(self) -> bytes:
        name = self.r.choice(["", "名前", "a" * 300, "../../etc", "\x00\x01", self.text(70)])
        messages = [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": self.text(5), "name": name, "input": self.json_value()}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": self.text(5), "content": self.json_value()}
            ]},
        ]  # fmt: skip
        tools = [{"name": name, "input_schema": {"type": "object"}}]
        return http(self.body(messages=messages, tools=tools))

    def garbage_image(self) -> bytes:
        data = self.r.choice(
            [
                "!!!not base64!!!", "", "A", "====",
                base64.b64encode(self.r.randbytes(self.r.randrange(10, 5000))).decode(),
            ]
        )  # fmt: skip
        source: Any = {"type": "base64", "media_type": self.json_value(), "data": data}
        if self.r.random() < 0.3:
            source = self.r.choice([{"type": "url", "url": 5}, {"type": "file"}, "x", None])
        image = {"type": "image", "source": source}
        content = [image, {"type": "tool_result", "tool_use_id": "t", "content": [image]}]
        return http(self.body(messages=[{"role": "user", "content": content}]))

    def big_body(self) -> bytes:
        body = self.body(messages=[{"role": "user", "content": "x" * (33 * MiB)}])
        if self.r.random() < 0.5:
            return http(body)
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        return http(chunked, headers=[(b"Transfer-Encoding", b"chunked")], content_length=False)

    # -- headers and framing

    def bad_credentials(self) -> bytes:
        body = self.body()
        variant = self.r.randrange(6)
        if variant == 0:
            return http(body, auth=b"\xff\xfe" + MARKER)
        if variant == 1:
            return http(body, auth=None, headers=[(b"x-api-key", b"\x80\x81" + MARKER)])
        if variant == 2:
            return http(body, auth=None)
        if variant == 3:
            return http(body, headers=[(b"Authorization", b"Bearer " + MARKER)])
        if variant == 4:
            return http(body, auth=MARKER, headers=[(b"x-api-key", TOKEN), (b"x-api-key", MARKER)])
        return http(body, auth=None, headers=[(b"Authorization", MARKER)])

    def lying_encoding(self) -> bytes:
        encoding = self.r.choice([b"gzip", b"deflate", b"br", b"zstd", b"gzip, deflate", MARKER])
        return http(self.body(), headers=[(b"Content-Encoding", encoding)])

    def oversized_headers(self) -> bytes:
        variant = self.r.randrange(4)
        if variant == 0:
            return http(self.body(), auth=MARKER * self.r.randrange(500, 5000))
        if variant == 1:
            return http(self.body(), headers=[(b"X-Note", MARKER * 1000)])
        if variant == 2:
            count = self.r.randrange(129, 400)
            return http(self.body(), headers=[(b"X-H%d" % i, MARKER) for i in range(count)])
        return http(self.body(), path="/v1/messages?" + "a" * self.r.randrange(8200, 20000))

    def bad_framing(self) -> bytes:
        body = self.body()
        variant = self.r.randrange(9)
        if variant == 0:
            return http(body, headers=[(b"Content-Length", b"3")])
        if variant == 1:
            return http(b"zz\r\n" + MARKER + b"\r\n", headers=[(b"Transfer-Encoding", b"chunked")],
                        content_length=False)  # fmt: skip
        if variant == 2:
            return http(b"0\r\n\r\n", headers=[(b"Transfer-Encoding", b"chunked")])
        if variant == 3:
            return http(body, headers=[(b"Transfer-Encoding", MARKER)], content_length=False)
        if variant == 4:
            return http(body, headers=[(b"X-Bad", MARKER + b"\x01")])
        if variant == 5:
            return MARKER + self.r.randbytes(200) + b"\r\n\r\n"
        if variant == 6:
            return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        if variant == 7:
            return b"GET / HTTP/1.1\r\nX-A: " + MARKER + b"\r\n\r\n"  # no Host
        return http(body, headers=[(b"Content-Length", b"-1")], content_length=False)

    def unknown_expect(self) -> bytes:
        path = self.r.choice(["/v1/messages", "/nope", "/v1/models"])
        return http(self.body(), path=path, headers=[(b"Expect", MARKER)])


KINDS: dict[str, tuple[Callable[[Fuzz], bytes], float]] = {
    "random JSON as the body": (Fuzz.random_json, 1),
    "wrong type in a top-level field": (Fuzz.wrong_type, 2),
    "wrong types inside content blocks": (Fuzz.wrong_block, 1),
    "stop_sequences not a list of strings": (Fuzz.bad_stop_sequences, 1),
    "schema `format` a list or object": (Fuzz.schema_format, 1),
    "nesting 2-12 000 levels": (Fuzz.deep_nesting, 1),
    "huge strings (1-8 MB)": (Fuzz.huge_string, 0.3),
    "invalid UTF-8, NaN, Infinity": (Fuzz.bad_encoding, 1),
    "truncated or byte-flipped JSON": (Fuzz.mangled_json, 1),
    "100-2 000 tools, odd names": (Fuzz.many_tools, 0.3),
    "odd tool names in the history": (Fuzz.odd_tool_names, 1),
    "garbage base64 images": (Fuzz.garbage_image, 1),
    "33 MiB body (with and without length)": (Fuzz.big_body, 0.02),
    "non-UTF-8, duplicate, missing credentials": (Fuzz.bad_credentials, 1),
    "Content-Encoding on a plain body": (Fuzz.lying_encoding, 1),
    "over-long or too many headers": (Fuzz.oversized_headers, 1),
    "bad framing, bad request line": (Fuzz.bad_framing, 1),
    "unknown Expect": (Fuzz.unknown_expect, 0.3),
}


# ---- run -------------------------------------------------------------------------------------


async def run(count: int, seed: int, concurrency: int, log_file: Path) -> int:
    rng = random.Random(seed)
    fuzz = Fuzz(rng)
    names = list(KINDS)
    weights = [KINDS[name][1] for name in names]
    fake = FakeUpstream()
    await fake.start()
    proxy = await start_proxy(proxy_settings(fake.url, log_file=log_file))
    results: dict[str, list[Outcome]] = defaultdict(list)
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=concurrency * 2)

    async def worker() -> None:
        while True:
            kind, data = await queue.get()
            results[kind].append(await exchange(proxy.port, data))
            queue.task_done()

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    started = time.monotonic()
    try:
        for _ in range(count):
            kind = rng.choices(names, weights)[0]
            await queue.put((kind, KINDS[kind][0](fuzz)))
        await queue.join()
        elapsed = time.monotonic() - started
        normal = await exchange(proxy.port, http(orjson.dumps(NORMAL)))
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await proxy.stop()
        await fake.stop()
    print_table(results)
    log_text = log_file.read_text(errors="replace") if log_file.exists() else ""
    print(f"\n{count} requests in {elapsed:.1f} s (seed {seed}, {concurrency} at a time)")
    print(f"a normal request afterwards: {normal.status}")
    print(f"tracebacks in the proxy log ({log_file}): {log_text.count('Traceback')}")
    bad = sum(
        1
        for outcomes in results.values()
        for o in outcomes
        if o.status is None or o.status >= 500 or not o.well_formed or o.echoed
    )
    return 0 if bad == 0 and normal.status == 200 else 1


def print_table(results: dict[str, list[Outcome]]) -> None:
    statuses = sorted({o.status for outcomes in results.values() for o in outcomes},
                      key=lambda s: (s is None, s or 0))  # fmt: skip
    labels = ["none" if s is None else str(s) for s in statuses]
    header = ["input", "tried", *labels, "non-JSON", "5xx", "echoed"]
    rows = []
    total: Counter[Any] = Counter()
    for kind in KINDS:
        outcomes = results.get(kind, [])
        if not outcomes:
            continue
        counts = Counter(o.status for o in outcomes)
        extra = {
            "tried": len(outcomes),
            "non-JSON": sum(not o.well_formed for o in outcomes),
            "5xx": sum(o.status is not None and o.status >= 500 for o in outcomes),
            "echoed": sum(o.echoed for o in outcomes),
        }
        total.update(counts)
        total.update({f"_{k}": v for k, v in extra.items()})
        rows.append([kind, extra["tried"], *(counts.get(s, 0) for s in statuses),
                     extra["non-JSON"], extra["5xx"], extra["echoed"]])  # fmt: skip
    rows.append(["total", total["_tried"], *(total.get(s, 0) for s in statuses),
                 total["_non-JSON"], total["_5xx"], total["_echoed"]])  # fmt: skip
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(_row(header, widths))
    print("-|-".join("-" * width for width in widths))
    for row in rows:
        print(_row(row, widths))


def _row(cells: list[Any], widths: list[int]) -> str:
    """The first column left-aligned, the counts right-aligned."""
    first, *rest = (str(cell) for cell in cells)
    aligned = [first.ljust(widths[0])]
    aligned += [cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
    return " | ".join(aligned)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--count", type=int, default=5000, help="requests to send")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--log", type=Path, help="the proxy's log file (default: a temp file)")
    args = parser.parse_args(argv)
    log_file = args.log or Path(tempfile.mkdtemp(prefix="cc-proxy-fuzz-")) / "proxy.log"
    return asyncio.run(run(args.count, args.seed, args.concurrency, log_file))


if __name__ == "__main__":
    sys.exit(main())
