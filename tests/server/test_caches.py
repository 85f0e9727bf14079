"""The translation memos through a real proxy: Claude Code's turns, one input changed at a time,
reach the upstream exactly as translating them without any memo would (docs/architecture.md,
"Caches")."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from cc_nemo.translate import memo
from cc_nemo.translate.request import translate_request
from cc_nemo.translate.tokens import estimate_tokens
from tests.fixtures import ProxyUnderTest

FIXTURE = (
    Path(__file__).parent.parent / "translate" / "fixtures" / "claude_code_2_1_330_read_turn.json"
)


@pytest.fixture(autouse=True)
def empty_memos() -> Iterator[None]:
    memo.clear_all()
    yield
    memo.clear_all()


def claude_code_turn() -> dict[str, Any]:
    request = orjson.loads(FIXTURE.read_bytes())
    request["stream"] = False
    return request


def expected_upstream_body(proxy: ProxyUnderTest, request: dict[str, Any]) -> Any:
    """What the upstream must receive: the request translated with every memo bypassed."""
    settings = proxy.settings
    spec = settings.main_model
    with memo.bypassed():
        body = translate_request(
            copy.deepcopy(request),
            spec,
            upstream_model=settings.provider.upstream_model_id(spec.model),
        ).body
    return orjson.loads(orjson.dumps(body))


async def post_json(proxy: ProxyUnderTest, path: str, body: dict[str, Any]) -> Any:
    """POST `body` with the session token; the answer's JSON (it must be a 200)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}{path}",
            data=orjson.dumps(body),
            headers={**proxy.auth_headers(), "Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


async def send(proxy: ProxyUnderTest, request: dict[str, Any]) -> Any:
    """One turn through the proxy; the body the upstream received."""
    await post_json(proxy, "/v1/messages?beta=true", request)
    return proxy.fake.requests[-1].body


def _read_tool(request: dict[str, Any]) -> dict[str, Any]:
    return next(tool for tool in request["tools"] if tool["name"] == "Read")


def schema_property(request: dict[str, Any]) -> None:
    prop = _read_tool(request)["input_schema"]["properties"]["file_path"]
    prop["description"] = "Y" + prop["description"][1:]  # same length


def system_prompt(request: dict[str, Any]) -> None:
    block = max(request["system"], key=lambda b: len(b["text"]))
    block["text"] = block["text"].replace("e", "E", 1)  # same length


def history_text(request: dict[str, Any]) -> None:
    # The longest text in the history (remembered by the token estimate), same length.
    blocks = [
        block
        for message in request["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if isinstance(block.get("content"), str) or isinstance(block.get("text"), str)
    ]
    block = max(blocks, key=lambda b: len(b.get("content") or b.get("text") or ""))
    field = "content" if isinstance(block.get("content"), str) else "text"
    block[field] = block[field][::-1]


@pytest.mark.parametrize("change", [schema_property, system_prompt, history_text])
async def test_each_turn_reaches_the_upstream_as_translated_afresh(
    proxy: ProxyUnderTest, change: Callable[[dict[str, Any]], None]
) -> None:
    request = claude_code_turn()
    first = await send(proxy, request)
    assert first == expected_upstream_body(proxy, request)
    hits = sum(m.hits for m in memo.all_memos())
    assert await send(proxy, request) == first
    assert sum(m.hits for m in memo.all_memos()) > hits  # the second turn was remembered

    changed = copy.deepcopy(request)
    change(changed)
    sent = await send(proxy, changed)
    assert sent == expected_upstream_body(proxy, changed)
    assert sent != first
    assert await send(proxy, request) == first


async def test_count_tokens_follows_a_changed_text(proxy: ProxyUnderTest) -> None:
    request = claude_code_turn()
    del request["max_tokens"]

    async def count(body: dict[str, Any]) -> int:
        return (await post_json(proxy, "/v1/messages/count_tokens", body))["input_tokens"]

    before = await count(request)
    assert await count(request) == before
    changed = copy.deepcopy(request)
    block = max(changed["system"], key=lambda b: len(b["text"]))
    # Letters for digits, same length: the estimate counts digits at 0.9, letters at 0.22.
    block["text"] = "9" * 200 + block["text"][200:]
    assert await count(changed) > before

    # A tool changed the same way: the remembered tool list is not served for it.
    with_tool_changed = copy.deepcopy(request)
    read = _read_tool(with_tool_changed)
    read["description"] = "9" * 100 + read["description"][100:]
    counted = await count(with_tool_changed)
    with memo.bypassed():
        expected = estimate_tokens(copy.deepcopy(with_tool_changed))
    assert counted == expected > before
    assert await count(request) == before
