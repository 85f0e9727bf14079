"""A prompt that leaves no room for a reply is answered with Anthropic's overflow wording (the
one Claude Code compacts on), never sent upstream with a one-token budget."""

from __future__ import annotations

import re
from dataclasses import replace

import anthropic
import pytest

from cc_nemo.settings.catalog import Catalog
from tests.fixtures import MakeProxy

PROMPT_TOO_LONG = re.compile(r"^prompt is too long: (\d+) tokens > (\d+) maximum$")


@pytest.mark.parametrize("stream", [True, False])
async def test_overflowing_prompt_is_a_400_in_anthropics_wording_before_any_upstream_call(
    make_proxy: MakeProxy, stream: bool
) -> None:
    small = replace(Catalog.build().resolve("nemotron"), context_window=8_000)
    proxy = await make_proxy(main_model=small)
    messages = [{"role": "user", "content": "word " * 6_000}]
    async with proxy.client() as client:
        with pytest.raises(anthropic.BadRequestError) as raised:
            if stream:
                async with client.messages.stream(
                    model="claude-sonnet-5", max_tokens=16_000, messages=messages
                ) as answer:
                    await answer.get_final_message()
            else:
                await client.messages.create(
                    model="claude-sonnet-5", max_tokens=16_000, messages=messages
                )
    error = raised.value.body["error"]
    assert error["type"] == "invalid_request_error"
    match = PROMPT_TOO_LONG.match(error["message"])
    assert match, error["message"]
    assert int(match.group(1)) > int(match.group(2))
    assert proxy.fake.requests == []
