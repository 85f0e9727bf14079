"""The HTTP surface: auth, Host guard, health, unknown routes, body limits, models, count_tokens."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import pytest

from tests.fake_upstream import Reply, completion
from tests.fixtures import SESSION_TOKEN, MakeProxy, ProxyUnderTest

MB = 1000 * 1000
MiB = 1024 * 1024
V1_ROUTES = [
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages?beta=true"),
    ("POST", "/v1/messages/count_tokens?beta=true"),
    ("GET", "/v1/models?limit=1000"),
    ("GET", "/v1/models/claude-cf-nemotron"),
    ("GET", "/v1/no-such-route"),
]
SMALL_REQUEST = {
    "model": "claude-x",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "x"}],
}


async def call(
    proxy: ProxyUnderTest,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    json: Any = None,
) -> tuple[int, dict[str, str], Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, proxy.url + path, headers=headers, json=json) as response,
    ):
        body = await response.read()
        payload = await response.json(content_type=None) if body else None
        return response.status, dict(response.headers), payload


@pytest.mark.parametrize(("method", "path"), V1_ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"x-api-key": "wrong"},
        {"Authorization": SESSION_TOKEN},  # no Bearer scheme
        {"Authorization": f"Bearer {SESSION_TOKEN}x"},
    ],
    ids=["none", "wrong-bearer", "wrong-api-key", "no-scheme", "token-prefix"],
)
async def test_every_v1_route_needs_the_session_token(
    proxy: ProxyUnderTest, method: str, path: str, headers: dict[str, str]
) -> None:
    status, response_headers, payload = await call(
        proxy, method, path, headers=headers, json=SMALL_REQUEST
    )
    assert status == 401
    assert payload["error"]["type"] == "authentication_error"
    assert response_headers["request-id"].startswith("req_")
    assert proxy.fake.requests == []


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {SESSION_TOKEN}"}, {"x-api-key": SESSION_TOKEN}],
    ids=["bearer", "x-api-key"],
)
async def test_session_token_is_accepted_as_bearer_or_api_key(
    proxy: ProxyUnderTest, headers: dict[str, str]
) -> None:
    status, _, payload = await call(proxy, "GET", "/v1/models", headers=headers)
    assert status == 200
    assert payload["data"]


@pytest.mark.parametrize("path", ["/", "/api/hello"])
@pytest.mark.parametrize("method", ["HEAD", "GET"])
async def test_health_probes_answer_without_auth(
    proxy: ProxyUnderTest, method: str, path: str
) -> None:
    status, headers, _ = await call(proxy, method, path)
    assert status == 200
    assert headers["request-id"].startswith("req_")


@pytest.mark.parametrize(
    "host",
    ["evil.example.com", "evil.example.com:8080", "127.0.0.1.nip.io", "10.0.0.5:1234", "[fe80::1]"],
)
@pytest.mark.parametrize("path", ["/", "/v1/models"])
async def test_requests_addressed_to_a_non_loopback_host_are_refused(
    proxy: ProxyUnderTest, host: str, path: str
) -> None:
    status, headers, payload = await call(
        proxy, "GET", path, headers={"Host": host, **proxy.auth_headers()}
    )
    assert status == 403
    assert payload["error"]["type"] == "permission_error"
    assert headers["request-id"].startswith("req_")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost:9", "LOCALHOST", "[::1]:4000", "[::1]"])
async def test_loopback_host_names_are_accepted(proxy: ProxyUnderTest, host: str) -> None:
    status, _, _ = await call(
        proxy, "GET", "/v1/models", headers={"Host": host, **proxy.auth_headers()}
    )
    assert status == 200


async def test_remembered_host_verdicts_never_stand_for_another_host(
    proxy: ProxyUnderTest,
) -> None:
    """The guard remembers its verdict per Host header (64 at most): each header still gets its
    own, in any order, past the bound too."""
    hosts = [(f"127.0.0.{n}:{n}", 200) for n in range(1, 40)]
    hosts += [(f"evil{n}.example.com", 403) for n in range(40)]
    for host, expected in [*hosts, *reversed(hosts), ("127.0.0.1.evil.example", 403)]:
        status, _, _ = await call(
            proxy, "GET", "/v1/models", headers={"Host": host, **proxy.auth_headers()}
        )
        assert status == expected, host


async def test_remote_hosts_are_accepted_when_explicitly_allowed(make_proxy: Any) -> None:
    proxy = await make_proxy(allow_remote=True)
    status, _, _ = await call(
        proxy, "GET", "/v1/models", headers={"Host": "proxy.lan:8080", **proxy.auth_headers()}
    )
    assert status == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("POST", "/v1/complete"), ("GET", "/v1/messages"), ("DELETE", "/")],
)
async def test_unknown_routes_are_anthropic_shaped_404s(
    proxy: ProxyUnderTest, method: str, path: str
) -> None:
    status, headers, payload = await call(proxy, method, path, headers=proxy.auth_headers())
    assert status == 404
    assert payload == {
        "type": "error",
        "error": {"type": "not_found_error", "message": payload["error"]["message"]},
        "request_id": headers["request-id"],
    }


@pytest.mark.parametrize("size", [2 * MB, 20 * MB], ids=["2MB", "20MB"])
async def test_large_request_bodies_are_accepted(make_proxy: MakeProxy, size: int) -> None:
    from dataclasses import replace

    from cc_nemo.settings.catalog import Catalog

    # A window the body fits in: past the window the answer is an overflow error, not a 413.
    roomy = replace(Catalog.build().resolve("nemotron"), context_window=50_000_000)
    proxy = await make_proxy(main_model=roomy)
    text = ("lorem ipsum dolor sit amet " * (size // 27 + 1))[:size] + " THE END"
    async with proxy.client(timeout=60) as client:
        message = await client.messages.create(
            model="claude-sonnet-5", max_tokens=10, messages=[{"role": "user", "content": text}]
        )
    assert message.content[0].text.endswith("THE END")
    assert proxy.fake.requests[-1].size > size


async def test_body_above_32_mib_is_rejected_with_413(proxy: ProxyUnderTest) -> None:
    text = "x" * (33 * MiB)
    async with proxy.client(timeout=60) as client:
        with pytest.raises(anthropic.APIStatusError) as raised:
            await client.messages.create(
                model="claude-sonnet-5", max_tokens=10, messages=[{"role": "user", "content": text}]
            )
    assert raised.value.status_code == 413
    assert raised.value.body["error"]["type"] == "request_too_large"
    assert proxy.fake.requests == []
    assert proxy.ledger.records[-1].status == 413


async def test_count_tokens_is_a_positive_local_estimate(proxy: ProxyUnderTest) -> None:
    async with proxy.client() as client:
        counted = await client.messages.count_tokens(
            model="claude-sonnet-5", messages=[{"role": "user", "content": "hi"}]
        )
    assert counted.input_tokens >= 1
    assert proxy.fake.requests == []


async def test_count_tokens_grows_with_system_messages_and_tools(proxy: ProxyUnderTest) -> None:
    base = {"model": "claude-x", "messages": [{"role": "user", "content": "hello there"}]}
    richer = {
        **base,
        "system": "You are a careful assistant. " * 50,
        "tools": [
            {
                "name": "Bash",
                "description": "Run a command " * 20,
                "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
            }
        ],
    }
    counts = []
    for payload in (base, richer):
        status, _, body = await call(
            proxy,
            "POST",
            "/v1/messages/count_tokens?beta=true",
            headers=proxy.auth_headers(),
            json=payload,
        )
        assert status == 200
        counts.append(body["input_tokens"])
    assert 1 <= counts[0] < counts[1]


async def test_count_tokens_does_not_trip_the_read_gate_for_a_file_that_fits(
    proxy: ProxyUnderTest,
) -> None:
    # ~70 KB of ordinary source: real tokenizers give ~17-20k tokens, under the 25k gate.
    line = "    result = compute_total(items, discount=0.15)  # apply the seasonal discount\n"
    source = line * (70_000 // len(line))
    payload = {
        "model": "claude-x",
        "messages": [
            {"role": "user", "content": "read it"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a"}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": source}],
            },
        ],
        "tools": [],
    }
    status, _, body = await call(
        proxy, "POST", "/v1/messages/count_tokens", headers=proxy.auth_headers(), json=payload
    )
    assert status == 200
    assert 10_000 < body["input_tokens"] < 25_000


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"messages": []}, "model"), ({"model": "claude-x"}, "messages")],
)
async def test_count_tokens_rejects_missing_fields(
    proxy: ProxyUnderTest, payload: dict[str, Any], field: str
) -> None:
    status, _, body = await call(
        proxy, "POST", "/v1/messages/count_tokens", headers=proxy.auth_headers(), json=payload
    )
    assert status == 400
    assert body["error"]["message"].startswith(field)


async def test_models_list_offers_claude_named_ids_main_model_first(proxy: ProxyUnderTest) -> None:
    status, _, body = await call(
        proxy, "GET", "/v1/models?limit=1000", headers=proxy.auth_headers()
    )
    assert status == 200
    ids = [model["id"] for model in body["data"]]
    assert ids[:2] == ["claude-cf-nemotron", "claude-cf-gpt-oss-20b"]
    assert all("claude" in model_id for model_id in ids)
    assert len(ids) == len(set(ids)) == len(proxy.settings.catalog.models)
    first = body["data"][0]
    assert first["type"] == "model"
    assert "nemotron" in first["display_name"]
    assert first["created_at"].endswith("Z")
    assert body["has_more"] is False
    assert (body["first_id"], body["last_id"]) == (ids[0], ids[-1])


async def test_models_list_pages_with_limit_and_after_id(proxy: ProxyUnderTest) -> None:
    _, _, first = await call(proxy, "GET", "/v1/models?limit=2", headers=proxy.auth_headers())
    assert len(first["data"]) == 2 and first["has_more"] is True
    _, _, second = await call(
        proxy,
        "GET",
        f"/v1/models?limit=2&after_id={first['last_id']}",
        headers=proxy.auth_headers(),
    )
    assert second["data"][0]["id"] not in [m["id"] for m in first["data"]]


async def test_discovered_model_id_is_usable_as_a_model_name(proxy: ProxyUnderTest) -> None:
    async with proxy.client() as client:
        listed = await client.models.list(limit=1000)
        proxy.fake.enqueue(Reply.json(completion("via discovery")))
        chosen = listed.data[3].id
        message = await client.messages.create(
            model=chosen, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert message.model == chosen
    alias = chosen.removeprefix("claude-cf-")
    expected = proxy.settings.provider.upstream_model_id(
        proxy.settings.catalog.resolve(alias).model
    )
    assert proxy.fake.requests[-1].body["model"] == expected
