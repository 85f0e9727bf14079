"""Claude Code's own view of the session, with the real client: the models its `/model` picker
offers (the session's model by name, the catalog discovered through GET /v1/models), and a
discovered model that it then uses with that model's own limits."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cc_nemo.settings.catalog import BUILTIN_MODELS
from tests.e2e.test_claude_cli import (
    Terminal,
    chat_requests,
    in_terminal,
    interactive_setup,
    run_claude,
)
from tests.fake_upstream import FakeUpstream, Reply, text_stream

pytestmark = pytest.mark.e2e

KIMI_ID = "workers-ai/@cf/moonshotai/kimi-k2.6"
KIMI_MAX_OUTPUT = 32_768
PICKER_FOOTER = "Enter to save"
# How long claude may take to redraw the picker after a keypress.
KEY_SETTLE_S = 0.3


async def test_headless_claude_discovers_the_catalog_and_uses_a_discovered_model(
    tmp_path: Path, claude_bin: str, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Reply.stream(text_stream("first")))
    upstream.enqueue(Reply.stream(text_stream("ANSWERED-BY-KIMI")))
    first = await run_claude(tmp_path, claude_bin, upstream, "hi")
    assert first.successful_result()["modelUsage"]["nemotron"]["contextWindow"] == 256_000

    # claude asked the proxy for its models and kept every catalog alias, by its display name.
    cache = json.loads(
        (tmp_path / "claude-home" / ".claude" / "cache" / "gateway-models.json").read_text()
    )
    discovered = {model["id"]: model["display_name"] for model in cache["models"]}
    assert discovered["claude-cf-nemotron"] == "Nemotron 3 120B · Workers AI (nemotron, main)"
    assert discovered["claude-cf-kimi"] == "Kimi K2.6 · Workers AI (kimi)"
    assert len(discovered) == 15

    second = await run_claude(
        tmp_path, claude_bin, upstream, "hi again", "--model", "claude-cf-kimi"
    )
    assert second.successful_result()["result"] == "ANSWERED-BY-KIMI"
    request = chat_requests(upstream)[-1]
    assert request.body["model"] == KIMI_ID
    assert request.body["max_tokens"] <= KIMI_MAX_OUTPUT  # kimi's limits, not nemotron's


async def test_the_model_picker_offers_the_catalog_and_a_pick_routes_to_it(
    tmp_path: Path, claude_bin: str, upstream: FakeUpstream
) -> None:
    work, env = interactive_setup(tmp_path, upstream)
    upstream.enqueue(Reply.stream(text_stream("PICKED-MODEL-ANSWER")))
    async with in_terminal(work, env, "run", "nemotron", "--claude", claude_bin) as (
        terminal,
        process,
    ):
        await terminal.wait_for_prompt(30)
        since = terminal.mark()
        await terminal.submit("/model")
        assert await terminal.read_until(PICKER_FOOTER, 15, since=since), terminal.text()[-3000:]
        # What the screen shows, as a terminal draws it: claude redraws only the cells that
        # change, so the raw output can lack any character that was already on screen there.
        picker = terminal.screen()
        # The session's model by the name a person knows, with its window and price.
        assert "Nemotron 3 120B · Workers AI" in picker
        assert "256k context · $0.5 in / $1.5 out per Mtok" in picker
        # claude's own slots say which of our models they are; no Anthropic price is shown.
        assert "nemotron (as Opus)" in picker
        assert "$8/$40" not in picker
        # The catalog, discovered from the proxy.
        assert "Gemma 4 26B · Workers AI (gemma4)" in picker
        assert "From gateway" in picker
        await _move_cursor_to(terminal, "kimi")
        since = terminal.mark()
        terminal.type("\r")
        confirmation = "Set model to Kimi K2.6 · Workers AI (kimi)"
        assert await terminal.read_until(confirmation, 15, since=since), terminal.text()[-3000:]
        await terminal.wait_for_prompt(15, since=since)
        await terminal.submit("which model are you")
        assert await terminal.read_until("PICKED-MODEL-ANSWER", 30), terminal.text()[-3000:]
        await terminal.press_ctrl_c_twice()
        await asyncio.wait_for(process.wait(), 30)

    answered = [r for r in chat_requests(upstream) if "which model" in json.dumps(r.body)]
    assert [r.body["model"] for r in answered] == [KIMI_ID]


async def _move_cursor_to(terminal: Terminal, alias: str) -> None:
    """Press Down from the picker's cursor, which starts on the session's model (its custom
    entry), to `alias` among the discovered models that follow it in the proxy's order: the
    session's model, then the catalog (claude redraws only what changed, so the screen cannot
    say where the cursor is; the request that follows says where it went)."""
    order = [spec.alias for spec in BUILTIN_MODELS]  # nemotron, the session's model, is first
    for _ in range(order.index(alias) + 1):
        terminal.type("\x1b[B")
        await terminal.read_until("\x00never", KEY_SETTLE_S)  # let claude redraw
