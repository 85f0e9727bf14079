#!/usr/bin/env python3
# The benchmark's floor (bench/README.md, "The reference"): a lean Anthropic -> OpenAI
# translator in ~250 lines of aiohttp + orjson, with none of cc-proxy's duties (no session
# token, no retries, no commit rule, no model routing, no log or ledger, no schema cleaning,
# no token estimate). bench/run.py runs it as side C next to the direct baseline (A) and
# cc-proxy (B), so cc-proxy's per-request cost is read as a multiple of what the translation
# alone costs in the same aiohttp. Kept as it was written, behaviour included: only this
# comment was added and the code formatted (`ruff format`); do not optimise it, or the floor moves.
"""Minimal pure-aiohttp Anthropic Messages -> OpenAI Chat Completions translator.

A *reference point* for benchmarks ("what a lean aiohttp proxy can reach"),
not a product: no auth, no retries, no model routing beyond one upstream model.

  REF_UPSTREAM   base URL of the OpenAI-compatible API (default http://127.0.0.1:18080/v1)
  REF_MODEL      upstream model name (default: the model from the request)
  REF_API_KEY    bearer token sent upstream (default "x")
  REF_UVLOOP=1   use uvloop;  REF_ORJSON=1  use orjson (both optional)

Run:  python ref_proxy.py --port 18090      (binds 127.0.0.1 only)
"""

from __future__ import annotations

import argparse
import json
import os
import uuid

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

if os.environ.get("REF_ORJSON") == "1":
    import orjson

    loads = orjson.loads

    def dumps(o) -> str:
        return orjson.dumps(o).decode()
else:
    loads = json.loads

    def dumps(o) -> str:
        return json.dumps(o, separators=(",", ":"), ensure_ascii=False)


UPSTREAM = (
    os.environ.get("REF_UPSTREAM", "http://127.0.0.1:18080/v1").rstrip("/") + "/chat/completions"
)
MODEL = os.environ.get("REF_MODEL")
API_KEY = os.environ.get("REF_API_KEY", "x")
STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
}


def _text(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"
    )


def anthropic_to_openai(body: dict) -> dict:
    msgs: list[dict] = []
    if body.get("system"):
        msgs.append({"role": "system", "content": _text(body["system"])})
    for m in body.get("messages", []):
        role, content = m["role"], m.get("content")
        if isinstance(content, str):
            msgs.append({"role": role, "content": content})
            continue
        if role == "assistant":
            text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
            calls = [
                {
                    "id": b["id"],
                    "type": "function",
                    "function": {"name": b["name"], "arguments": dumps(b.get("input", {}))},
                }
                for b in content
                if b.get("type") == "tool_use"
            ]
            out = {"role": "assistant", "content": text or None}
            if calls:
                out["tool_calls"] = calls
            msgs.append(out)
            continue
        parts: list[dict] = []
        for b in content:
            t = b.get("type")
            if t == "tool_result":
                c = b.get("content")
                msgs.append(
                    {
                        "role": "tool",
                        "tool_call_id": b["tool_use_id"],
                        "content": c if isinstance(c, str) else _text(c),
                    }
                )
            elif t == "text":
                parts.append({"type": "text", "text": b["text"]})
            elif t == "image" and b.get("source", {}).get("type") == "base64":
                s = b["source"]
                parts.append(
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:{s['media_type']};base64,{s['data']}"},
                    }
                )
        if parts:
            msgs.append(
                {
                    "role": role,
                    "content": parts[0]["text"]
                    if len(parts) == 1 and parts[0]["type"] == "text"
                    else parts,
                }
            )
    req = {
        "model": MODEL or body.get("model"),
        "messages": msgs,
        "max_tokens": body.get("max_tokens"),
    }
    for k in ("temperature", "top_p"):
        if k in body:
            req[k] = body[k]
    if body.get("stop_sequences"):
        req["stop"] = body["stop_sequences"]
    if body.get("tools"):
        req["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema", {}),
                },
            }
            for t in body["tools"]
        ]
        tc = body.get("tool_choice") or {}
        if tc.get("type") == "any":
            req["tool_choice"] = "required"
        elif tc.get("type") == "tool":
            req["tool_choice"] = {"type": "function", "function": {"name": tc["name"]}}
        elif tc.get("type") == "none":
            req["tool_choice"] = "none"
    if body.get("stream"):
        req["stream"] = True
        req["stream_options"] = {"include_usage": True}
    return req


def _usage(u: dict | None) -> dict:
    u = u or {}
    return {
        "input_tokens": u.get("prompt_tokens", 0),
        "output_tokens": u.get("completion_tokens", 0),
    }


def openai_to_anthropic(r: dict, model: str) -> dict:
    ch = (r.get("choices") or [{}])[0]
    msg = ch.get("message") or {}
    content: list[dict] = []
    if msg.get("content"):
        content.append({"type": "text", "text": msg["content"]})
    for tc in msg.get("tool_calls") or []:
        try:
            args = loads(tc["function"].get("arguments") or "{}")
        except ValueError:
            args = {"_raw": tc["function"].get("arguments")}
        content.append(
            {
                "type": "tool_use",
                "id": tc.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": tc["function"]["name"],
                "input": args,
            }
        )
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP.get(ch.get("finish_reason"), "end_turn"),
        "stop_sequence": None,
        "usage": _usage(r.get("usage")),
    }


def ev(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {dumps(data)}\n\n".encode()


async def messages(request: web.Request) -> web.StreamResponse:
    body = loads(await request.read())
    model = body.get("model", "")
    up = await request.app["session"].post(
        UPSTREAM,
        data=dumps(anthropic_to_openai(body)),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    if up.status != 200:
        text = await up.text()
        up.release()
        return web.json_response(
            {"type": "error", "error": {"type": "api_error", "message": text[:2000]}},
            status=up.status,
        )
    if not body.get("stream"):
        r = loads(await up.read())
        up.release()
        return web.json_response(openai_to_anthropic(r, model), dumps=dumps)
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    await resp.write(
        ev(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": f"msg_{uuid.uuid4().hex[:24]}",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                },
            },
        )
    )
    st = {"idx": -1, "kind": None, "tools": {}, "stop": "end_turn", "usage": None}

    def close_block(out: list) -> None:
        if st["kind"] is not None:
            out.append(ev("content_block_stop", {"type": "content_block_stop", "index": st["idx"]}))
            st["kind"] = None

    def handle(chunk: dict, out: list) -> None:
        if chunk.get("usage"):
            st["usage"] = chunk["usage"]
        for ch in chunk.get("choices") or []:
            d = ch.get("delta") or {}
            if d.get("content"):
                if st["kind"] != "text":
                    close_block(out)
                    st["idx"] += 1
                    st["kind"] = "text"
                    out.append(
                        ev(
                            "content_block_start",
                            {
                                "type": "content_block_start",
                                "index": st["idx"],
                                "content_block": {"type": "text", "text": ""},
                            },
                        )
                    )
                out.append(
                    ev(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": st["idx"],
                            "delta": {"type": "text_delta", "text": d["content"]},
                        },
                    )
                )
            for tc in d.get("tool_calls") or []:
                key = tc.get("index", 0)
                fn = tc.get("function") or {}
                if key not in st["tools"]:
                    close_block(out)
                    st["idx"] += 1
                    st["kind"] = "tool"
                    st["tools"][key] = st["idx"]
                    out.append(
                        ev(
                            "content_block_start",
                            {
                                "type": "content_block_start",
                                "index": st["idx"],
                                "content_block": {
                                    "type": "tool_use",
                                    "id": tc.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                                    "name": fn.get("name", ""),
                                    "input": {},
                                },
                            },
                        )
                    )
                if fn.get("arguments"):
                    out.append(
                        ev(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": st["tools"][key],
                                "delta": {
                                    "type": "input_json_delta",
                                    "partial_json": fn["arguments"],
                                },
                            },
                        )
                    )
            if ch.get("finish_reason"):
                st["stop"] = STOP.get(ch["finish_reason"], "end_turn")

    buf = b""
    try:
        async for data in up.content.iter_any():
            buf += data
            if b"\n" not in data:
                continue
            lines = buf.split(b"\n")
            buf = lines.pop()
            out: list[bytes] = []
            for line in lines:
                if line.startswith(b"data:"):
                    payload = line[5:].strip()
                    if payload and payload != b"[DONE]":
                        handle(loads(payload), out)
            if out:
                await resp.write(b"".join(out))
    finally:
        up.release()
    out = []
    close_block(out)
    out.append(
        ev(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": st["stop"], "stop_sequence": None},
                "usage": _usage(st["usage"]),
            },
        )
    )
    out.append(ev("message_stop", {"type": "message_stop"}))
    await resp.write(b"".join(out))
    await resp.write_eof()
    return resp


async def count_tokens(request: web.Request) -> web.Response:
    return web.json_response({"input_tokens": len(await request.read()) // 4})


async def _startup(app: web.Application) -> None:
    app["session"] = ClientSession(
        connector=TCPConnector(limit=0),
        timeout=ClientTimeout(total=None, sock_read=600),
        auto_decompress=False,
    )


async def _cleanup(app: web.Application) -> None:
    await app["session"].close()


def make_app() -> web.Application:
    app = web.Application(
        client_max_size=64 * 1024 * 1024
    )  # aiohttp's default is 1 MiB: too small for Claude Code
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    return app


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18090)
    a = ap.parse_args()
    if os.environ.get("REF_UVLOOP") == "1":
        import uvloop

        uvloop.install()
    web.run_app(make_app(), host=a.host, port=a.port, access_log=None, print=None)
