"""`cc-proxy models`: table, --json, add/remove/default, and --remote against a fake API."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from cc_nemo.settings.catalog import BUILTIN_MODELS
from cc_nemo.settings.config import load_config, save_config
from cc_nemo.settings.resolve import build_catalog, resolve_fallbacks
from tests.cli.conftest import API_KEY, CF_API_TOKEN, GATEWAY_TOKEN, run_cli
from tests.fake_upstream import FakeUpstream, Reply, workers_ai_model

JSON_KEYS = {
    "alias",
    "model",
    "context_window",
    "max_output_tokens",
    "input_price_per_mtok",
    "output_price_per_mtok",
    "tools",
    "reasoning",
    "vision",
}


def models_json() -> list[dict[str, object]]:
    result = run_cli("models", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_lists_every_builtin_model_with_the_documented_keys() -> None:
    data = models_json()
    assert [row["alias"] for row in data] == [spec.alias for spec in BUILTIN_MODELS]
    for row in data:
        assert set(row) >= JSON_KEYS
    nemotron = data[0]
    assert nemotron["model"] == "workers-ai/@cf/nvidia/nemotron-3-120b-a12b"
    assert (nemotron["context_window"], nemotron["input_price_per_mtok"]) == (256_000, 0.5)


def test_table_shows_aliases_ids_limits_prices_capabilities_and_notes() -> None:
    result = run_cli("models")
    assert result.exit_code == 0, result.output
    for spec in BUILTIN_MODELS:
        assert spec.alias in result.stdout and spec.model in result.stdout
    assert "nemotron (default)" in result.stdout
    assert "256,000" in result.stdout and "$0.051" in result.stdout and "$4.40" in result.stdout
    for header in ("Context", "Max out", "Tools", "Reasoning", "Vision"):
        assert header in result.stdout
    assert "note: llama: 24k context" in result.stdout


def test_added_alias_is_stored_listed_marked_and_removed() -> None:
    added = run_cli(
        "models", "add", "glm53", "@cf/zai-org/glm-5.3", "--context", "131072",
        "--max-output", "32768", "--price-in", "1.4", "--price-out", "4.4", "--reasoning",
        "--vision", "--no-tools",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    spec = load_config().user_models["glm53"]
    assert (spec.model, spec.context_window, spec.max_output_tokens) == (
        "@cf/zai-org/glm-5.3",
        131_072,
        32_768,
    )
    assert (spec.tools, spec.reasoning, spec.vision) == (False, True, True)
    row = next(r for r in models_json() if r["alias"] == "glm53")
    assert row["user_defined"] is True and row["output_price_per_mtok"] == 4.4
    table = run_cli("models").stdout
    assert "glm53 *" in table and "* user-defined" in table
    removed = run_cli("models", "remove", "glm53")
    assert removed.exit_code == 0
    assert "glm53" not in load_config().user_models
    assert all(r["alias"] != "glm53" for r in models_json())


def test_removing_an_alias_drops_the_fallbacks_that_name_it() -> None:
    assert run_cli("models", "add", "tiny", "@cf/org/tiny").exit_code == 0
    config = load_config()
    save_config(replace(config, fallbacks={"nemotron": ["tiny", "kimi"], "tiny": ["llama"]}))
    assert run_cli("models", "remove", "tiny").exit_code == 0
    assert load_config().fallbacks == {"nemotron": ["kimi"]}
    # A fallback naming an unknown model would be a start-up error for every later `run`.
    config = load_config()
    resolved = resolve_fallbacks(build_catalog(config), config.fallbacks)
    assert [spec.alias for spec in resolved["nemotron"]] == ["kimi"]


def test_add_like_copies_a_builtin_and_applies_overrides() -> None:
    result = run_cli(
        "models",
        "add",
        "kimi-next",
        "@cf/moonshotai/kimi-k3",
        "--like",
        "kimi",
        "--context",
        "300000",
    )
    assert result.exit_code == 0, result.output
    spec = load_config().user_models["kimi-next"]
    kimi = next(s for s in BUILTIN_MODELS if s.alias == "kimi")
    assert spec.quirks == kimi.quirks and spec.output_price_per_mtok == kimi.output_price_per_mtok
    assert (spec.model, spec.context_window) == ("@cf/moonshotai/kimi-k3", 300_000)


def test_adding_a_builtin_alias_overrides_it_and_says_so() -> None:
    result = run_cli("models", "add", "llama", "@cf/meta/llama-4-scout-17b-16e-instruct")
    assert result.exit_code == 0
    assert "overrides the built-in alias 'llama'" in result.stderr
    row = next(r for r in models_json() if r["alias"] == "llama")
    assert row["model"] == "@cf/meta/llama-4-scout-17b-16e-instruct"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("add", "a/b", "@cf/x/y"), "invalid alias 'a/b'"),
        (("add", "tiny", "@cf/x/y", "--context", "1000", "--max-output", "2000"), "cannot exceed"),
        (("add", "x", "m", "--like", "nope"), "unknown model 'nope'"),
        (("remove", "nemotron"), "'nemotron' is built in"),
        (("remove", "ghost"), "no user-defined alias 'ghost'"),
        (("default", "nemotorn"), "unknown model 'nemotorn'; known aliases:"),
    ],
)
def test_models_mistakes_are_one_clear_line(args: tuple[str, ...], expected: str) -> None:
    result = run_cli("models", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("cc-proxy: error: ") and expected in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_default_sets_and_resets_the_model_choices() -> None:
    result = run_cli("models", "default", "glm", "--small", "glm-flash", "--subagent", "kimi")
    assert result.exit_code == 0
    assert "default model:  glm" in result.stdout
    config = load_config()
    assert (config.default_model, config.small_model, config.subagent_model) == (
        "glm",
        "glm-flash",
        "kimi",
    )
    assert "glm (default)" in run_cli("models").stdout
    run_cli("models", "default", "--reset")
    config = load_config()
    assert (config.default_model, config.small_model, config.subagent_model) == (None, None, None)


PAGE_1 = [
    workers_ai_model(
        "@cf/nvidia/nemotron-3-120b-a12b",
        context_window="256000",
        function_calling="true",
        reasoning="true",
        price=[
            {"unit": "per M input tokens", "price": 0.5, "currency": "USD"},
            {"unit": "per M output tokens", "price": 1.5, "currency": "USD"},
        ],
    ),
    workers_ai_model("@cf/zai-org/glm-5.3", context_window="1310720", function_calling="true"),
]
PAGE_2 = [workers_ai_model("@cf/meta/llama-3.1-8b-instruct", context_window="32000")]


@pytest.fixture
def cloudflare_api(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> FakeUpstream:
    """The account's three models, served two per page."""
    monkeypatch.setenv("CC_PROXY_CF_API_BASE", f"{upstream.url}/client/v4")
    monkeypatch.setenv("CF_AI_GATEWAY_URL", "https://gateway.ai.cloudflare.com/v1/acct123/gw")
    monkeypatch.setenv("CF_AIG_TOKEN", GATEWAY_TOKEN)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", CF_API_TOKEN)
    upstream.workers_ai_models = PAGE_1 + PAGE_2
    upstream.search_page_size = 2
    return upstream


def test_remote_lists_every_page_with_the_account_token_and_marks_cataloged_models(
    cloudflare_api: FakeUpstream,
) -> None:
    result = run_cli("models", "--remote", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [row["model"] for row in data] == [
        "@cf/meta/llama-3.1-8b-instruct",
        "@cf/nvidia/nemotron-3-120b-a12b",
        "@cf/zai-org/glm-5.3",
    ]
    nemotron = data[1]
    assert nemotron["alias"] == "nemotron" and nemotron["in_catalog"] is True
    assert (nemotron["input_price_per_mtok"], nemotron["output_price_per_mtok"]) == (0.5, 1.5)
    assert (nemotron["tools"], nemotron["reasoning"], nemotron["context_window"]) == (
        True,
        True,
        256_000,
    )
    assert data[2]["alias"] is None and data[2]["tools"] is True
    first = cloudflare_api.requests[0]
    assert first.path == "/client/v4/accounts/acct123/ai/models/search"
    assert first.query["task"] == "Text Generation"
    assert first.headers["authorization"] == f"Bearer {CF_API_TOKEN}"
    assert len(cloudflare_api.requests) == 2


def test_remote_table_names_the_account_and_counts_cataloged_models(
    cloudflare_api: FakeUpstream,
) -> None:
    result = run_cli("models", "--remote")
    assert result.exit_code == 0, result.output
    assert "account acct123" in result.stdout
    assert "3 models, 1 in the catalog" in result.stdout
    assert CF_API_TOKEN not in result.output


def test_remote_stops_when_the_api_repeats_a_page(cloudflare_api: FakeUpstream) -> None:
    same_page = Reply.json({"success": True, "result": PAGE_1, "result_info": {"total_count": 99}})
    cloudflare_api.enqueue(same_page, same_page)
    result = run_cli("models", "--remote", "--json")
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)) == 2 and len(cloudflare_api.requests) == 2


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Reply.error(403, {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}]}), "the Cloudflare API token was rejected (HTTP 403: Authentication error)"),
        (Reply.error(404, {"success": False, "errors": [{"code": 7003, "message": "Could not route"}]}), "account acct123 was not found"),
        (Reply.error(502, {"success": False, "errors": [{"code": 7009, "message": "Upstream service unavailable"}]}), "listing models failed (HTTP 502"),
    ],
)  # fmt: skip
def test_remote_failures_are_one_line(
    cloudflare_api: FakeUpstream, answer: Reply, expected: str
) -> None:
    cloudflare_api.enqueue(answer)
    result = run_cli("models", "--remote")
    assert result.exit_code == 1
    assert expected in result.stderr and len(result.stderr.splitlines()) == 1


def test_remote_without_an_api_token_says_how_to_add_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CF_AI_GATEWAY_URL", "https://gateway.ai.cloudflare.com/v1/acct123/gw")
    result = run_cli("models", "--remote")
    assert result.exit_code == 1
    assert "needs a Cloudflare API token with Workers AI Read" in result.stderr


def test_remote_without_an_account_id_says_how_to_give_one() -> None:
    result = run_cli("models", "--remote")
    assert result.exit_code == 1
    assert "needs the Cloudflare account id" in result.stderr


def test_remote_uses_the_api_key_of_the_workers_ai_rest_provider(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC_PROXY_CF_API_BASE", f"{upstream.url}/client/v4")
    monkeypatch.setenv(
        "CC_PROXY_BASE_URL", "https://api.cloudflare.com/client/v4/accounts/acct9/ai/v1"
    )
    monkeypatch.setenv("CC_PROXY_API_KEY", API_KEY)
    result = run_cli("models", "--remote", "--json")
    assert result.exit_code == 0, result.output
    assert upstream.requests[0].path == "/client/v4/accounts/acct9/ai/models/search"
    assert upstream.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
