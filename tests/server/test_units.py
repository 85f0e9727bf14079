"""Pure helpers of the server side: ids, retry arithmetic, model routing (the usage summary: tests/ledger)."""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from dataclasses import replace

import pytest

from cc_nemo.proxy.ids import _random_suffix, new_message_id, new_request_id, new_tool_id
from cc_nemo.proxy.loopback import host_header_is_loopback as is_loopback_host
from cc_nemo.proxy.middlewares import token_matches
from cc_nemo.proxy.routing import model_for_request
from cc_nemo.proxy.upstream import (
    MAX_HONOURED_RETRY_AFTER,
    gateway_metadata,
    parse_retry_after,
    retry_delay,
)
from cc_nemo.settings.catalog import Catalog, ad_hoc_spec
from tests.fixtures import proxy_settings


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (new_request_id, r"^req_[A-Za-z0-9]{24}$"),
        (new_message_id, r"^msg_[A-Za-z0-9]{24}$"),
        (new_tool_id, r"^toolu_[A-Za-z0-9]{24}$"),
    ],
)
def test_ids_have_anthropic_shapes_and_do_not_repeat(make, pattern: str) -> None:
    ids = {make() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.match(pattern, value) for value in ids)


def test_id_characters_are_equally_likely() -> None:
    """Each of the 62 characters as often as the others: a plain byte % 62 would make the first
    eight ~25 % more frequent (an id easier to guess). 120,000 characters: ~1935 each, standard
    deviation ~44; the bound is 5 of them."""
    counts = Counter("".join(new_request_id()[4:] for _ in range(5000)))
    assert sorted(counts) == sorted(string.ascii_letters + string.digits)
    expected = 5000 * 24 / 62
    assert all(abs(count - expected) < 0.12 * expected for count in counts.values()), counts


def test_a_suffix_longer_than_one_draw_is_complete() -> None:
    for _ in range(200):
        assert re.fullmatch(r"[A-Za-z0-9]{100}", _random_suffix(100))


@pytest.mark.parametrize("model", ["nemotron", "modèle-ü", "模型", 'say "hi"\n', None])
def test_gateway_metadata_is_compact_ascii_json(model: str | None) -> None:
    """A header value: ASCII whatever the alias (a config.toml key may be any text)."""
    entries = {"client": "cc-proxy", "request_id": "req_x", "claude_session": "abc"}
    if model is not None:
        entries["model"] = model
    metadata = gateway_metadata(request_id="req_x", claude_session="abc", model=model)
    assert metadata.isascii()
    assert metadata == json.dumps(entries, separators=(",", ":"))


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [
        (0, None, 0.5),
        (1, None, 1.0),
        (2, None, 2.0),
        (0, "2", 2.0),  # the upstream's wait wins when longer than our backoff
        (2, "1", 2.0),  # our backoff wins when longer
        (0, "0.25", 0.5),
        (0, str(MAX_HONOURED_RETRY_AFTER + 1), None),  # long waits belong to Claude Code
        (0, "not a number", 0.5),
    ],
)
def test_retry_delay_doubles_and_honours_short_retry_after(
    attempt: int, retry_after: str | None, expected: float | None
) -> None:
    assert retry_delay(attempt, base_delay=0.5, retry_after=retry_after) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("-4", 0.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
    ],
)
def test_parse_retry_after_reads_seconds_and_http_dates(
    value: str | None, expected: float | None
) -> None:
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert parse_retry_after(value, now=now) == expected


SETTINGS = proxy_settings("http://127.0.0.1:9")
CATALOG = Catalog.build()


@pytest.mark.parametrize(
    ("name", "alias"),
    [
        ("nemotron", "nemotron"),
        ("gpt-oss-20b", "gpt-oss-20b"),
        ("claude-opus-5-5", "nemotron"),
        ("claude-sonnet-4-5-20250929", "nemotron"),
        ("claude-opus-4-1", "nemotron"),
        ("Claude-Sonnet-5", "nemotron"),
        ("sonnet", "nemotron"),
        ("claude-haiku-4-5", "gpt-oss-20b"),
        ("claude-3-5-haiku-20241022", "gpt-oss-20b"),
        ("haiku", "gpt-oss-20b"),
        ("claude-cf-kimi", "kimi"),
        ("claude-cf-nemotron", "nemotron"),
        ("glm", "glm"),
        ("@cf/zai-org/glm-5.2", "glm"),
        ("workers-ai/@cf/zai-org/glm-5.2", "glm"),
        ("gpt-4o", None),
        ("llama-9000", None),
    ],
)
def test_model_names_resolve_to_the_session_specs(name: str, alias: str | None) -> None:
    spec = model_for_request(SETTINGS, name)
    assert (spec.alias if spec else None) == alias


def test_subagent_alias_and_ad_hoc_main_model_resolve_exactly() -> None:
    ad_hoc = ad_hoc_spec("@cf/vendor/new-model")
    settings = replace(SETTINGS, main_model=ad_hoc, subagent_model=CATALOG.resolve("qwen3"))
    assert model_for_request(settings, "@cf/vendor/new-model") == ad_hoc
    assert model_for_request(settings, "claude-opus-5-5") == ad_hoc
    assert model_for_request(settings, "qwen3").alias == "qwen3"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.1:8080", True),
        ("localhost", True),
        ("localhost.:80", True),
        ("[::1]:443", True),
        ("[::1]", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("localhost.evil.com", False),
        ("example.com:127", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback_host(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("presented", "matches"),
    [("tok-123", True), ("tok-12", False), ("tok-1234", False), ("tök-123", False), ("", False)],
)
def test_token_comparison(presented: str, matches: bool) -> None:
    assert token_matches(presented, "tok-123") is matches
