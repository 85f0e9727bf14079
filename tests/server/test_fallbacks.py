"""`[models.X] fallbacks`: when X stays out of capacity after the proxy's retries, the next
model answers the same request, translated for its own limits; every fallback is recorded."""

from __future__ import annotations

import anthropic
import pytest

from cc_nemo.settings.catalog import Catalog
from tests.fake_upstream import CAPACITY_ERROR, Reply, completion, text_stream
from tests.fixtures import MakeProxy

MESSAGES = [{"role": "user", "content": "hi"}]


def fallbacks(*aliases: str) -> dict[str, tuple]:
    catalog = Catalog.build()
    return {"nemotron": tuple(catalog.resolve(alias) for alias in aliases)}


@pytest.mark.parametrize("stream", [True, False])
async def test_out_of_capacity_model_is_answered_by_its_fallback(
    make_proxy: MakeProxy, stream: bool
) -> None:
    proxy = await make_proxy(max_retries=1, fallbacks=fallbacks("kimi"))
    answer = (
        Reply.stream(text_stream("from kimi")) if stream else Reply.json(completion("from kimi"))
    )
    proxy.fake.enqueue(Reply.error(429, CAPACITY_ERROR), Reply.error(429, CAPACITY_ERROR), answer)
    async with proxy.client() as client:
        if stream:
            async with client.messages.stream(
                model="claude-sonnet-5", max_tokens=100, messages=MESSAGES
            ) as answered:
                message = await answered.get_final_message()
        else:
            message = await client.messages.create(
                model="claude-sonnet-5", max_tokens=100, messages=MESSAGES
            )
    assert message.content[0].text == "from kimi"
    models = [request.body["model"] for request in proxy.fake.requests]
    kimi = Catalog.build().resolve("kimi").model
    assert models[:2] == [proxy.settings.main_model.model] * 2
    assert models[2] == kimi
    record = proxy.ledger.records[-1]
    assert (record.fallback_from, record.answered_by) == ("nemotron", "kimi")
    assert record.upstream_model == kimi
    assert "1 request answered by kimi: nemotron out of capacity" in (
        proxy.ledger.summary().render()
    )


async def test_fallbacks_are_tried_in_order_and_the_last_failure_is_reported(
    make_proxy: MakeProxy,
) -> None:
    proxy = await make_proxy(max_retries=0, fallbacks=fallbacks("kimi", "gemma4"))
    proxy.fake.enqueue(*[Reply.error(429, CAPACITY_ERROR)] * 3)
    async with proxy.client() as client:
        with pytest.raises(anthropic.OverloadedError):
            await client.messages.create(model="claude-sonnet-5", max_tokens=100, messages=MESSAGES)
    catalog = Catalog.build()
    assert [r.body["model"] for r in proxy.fake.requests] == [
        proxy.settings.main_model.model,
        catalog.resolve("kimi").model,
        catalog.resolve("gemma4").model,
    ]
    # No model answered: nothing is booked as answered by a fallback.
    record = proxy.ledger.records[-1]
    assert (record.fallback_from, record.answered_by, record.status) == (None, None, 529)
    assert "answered by" not in proxy.ledger.summary().render()


async def test_a_whole_answer_records_the_reasoning_tokens_the_upstream_reports(
    make_proxy: MakeProxy,
) -> None:
    proxy = await make_proxy()
    usage = {
        "prompt_tokens": 30,
        "completion_tokens": 12,
        "completion_tokens_details": {"reasoning_tokens": 7},
    }
    body = completion("thought, then answered")
    body["usage"] = usage
    proxy.fake.enqueue(Reply.json(body))
    async with proxy.client() as client:
        await client.messages.create(model="claude-sonnet-5", max_tokens=100, messages=MESSAGES)
    record = proxy.ledger.records[-1]
    assert (record.output_tokens, record.reasoning_tokens) == (12, 7)


async def test_a_permanent_error_does_not_fall_back(make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(max_retries=0, fallbacks=fallbacks("kimi"))
    proxy.fake.enqueue(Reply.error(401, {"error": "Unauthorized"}))
    async with proxy.client() as client:
        with pytest.raises(anthropic.AuthenticationError):
            await client.messages.create(model="claude-sonnet-5", max_tokens=100, messages=MESSAGES)
    assert len(proxy.fake.requests) == 1


async def test_no_fallback_without_configuration(make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(max_retries=0)
    proxy.fake.enqueue(Reply.error(429, CAPACITY_ERROR))
    async with proxy.client() as client:
        with pytest.raises(anthropic.OverloadedError):
            await client.messages.create(model="claude-sonnet-5", max_tokens=100, messages=MESSAGES)
    assert len(proxy.fake.requests) == 1
