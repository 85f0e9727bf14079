"""The local token estimate is calibrated, never 0, and never far too high (ARCHITECTURE #8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cc_nemo.translate import estimate_tokens

FIXTURE = Path(__file__).parent / "fixtures" / "claude_code_2_1_330_read_turn.json"


def text_tokens(text: str) -> int:
    """The estimate for one text alone: a one-message request less its fixed overheads."""
    empty = estimate_tokens({"messages": [{"role": "user", "content": ""}]})
    return estimate_tokens({"messages": [{"role": "user", "content": text}]}) - empty


def cat_n_python_file(lines: int = 500) -> str:
    """What Claude Code's Read tool returns for a typical source file (~80 chars a line)."""
    body = []
    for n in range(1, lines + 1):
        code = (
            f"    result_{n} = compute_value(items[{n}], factor={n % 7}, name='item_{n}')  # step"
        )
        body.append(f"{n:>6}\t{code}")
    return "\n".join(body)


def test_500_line_cat_n_file_of_40kb_stays_under_claude_codes_read_gate() -> None:
    text = cat_n_python_file()
    assert 38_000 < len(text) < 48_000
    tokens = estimate_tokens({"messages": [{"role": "user", "content": text}]})
    assert 8_000 < tokens < 25_000


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        # Reference counts from the calibration (o200k_base / Claude tokenizer), ±25%.
        ("The quick brown fox jumps over the lazy dog. " * 100, 1000 * 0.75, 1100 * 1.25),
        ("日本語のテキストです。" * 50, 300, 700),
    ],
)
def test_estimate_is_close_to_real_tokenizers(text: str, low: float, high: float) -> None:
    assert low <= text_tokens(text) <= high


def test_real_claude_code_request_estimate_is_plausible() -> None:
    request = json.loads(FIXTURE.read_text())
    tokens = estimate_tokens(request)
    # 112 KB of JSON: prose, schemas and a 33 KB Read result, about 30k tokens measured.
    assert 24_000 < tokens < 40_000


@pytest.mark.parametrize(
    "request_body",
    [
        {"messages": [{"role": "user", "content": "hi"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "."}]}]},
        {"messages": [], "system": "x"},
        {"messages": []},
        {},
    ],
)
def test_estimate_is_never_zero(request_body: dict) -> None:
    assert estimate_tokens(request_body) >= 1


@pytest.mark.parametrize(
    ("block", "minimum"),
    [
        (
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": "AA"},
            },
            1600,
        ),
        ({"type": "tool_result", "tool_use_id": "t", "content": "word " * 400}, 300),
        (
            {
                "type": "tool_result",
                "tool_use_id": "t",
                "content": [{"type": "text", "text": "word " * 400}],
            },
            300,
        ),
        ({"type": "tool_use", "id": "t", "name": "Bash", "input": {"command": "word " * 400}}, 300),
        ({"type": "document", "source": {"type": "text", "data": "word " * 400}}, 300),
    ],
)
def test_every_kind_of_content_counts(block: dict, minimum: int) -> None:
    request = {"messages": [{"role": "user", "content": [block]}]}
    assert estimate_tokens(request) >= minimum


def test_tools_count_names_descriptions_and_schemas() -> None:
    bare = estimate_tokens({"messages": [{"role": "user", "content": "hi"}]})
    with_tools = estimate_tokens(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [
                {
                    "name": "Bash",
                    "description": "Runs a command. " * 50,
                    "input_schema": {
                        "type": "object",
                        "properties": {"command": {"type": "string"}},
                    },
                }
            ],
        }
    )
    assert with_tools - bare > 150


def test_estimating_a_2mb_request_is_fast() -> None:
    import time

    request = {"messages": [{"role": "user", "content": cat_n_python_file()} for _ in range(50)]}
    started = time.perf_counter()
    estimate_tokens(request)
    assert time.perf_counter() - started < 0.1


@pytest.mark.parametrize(
    "texts",
    [
        ["plain ascii", "more text 123"],
        ["naïve café", "x"],  # Latin-1
        ["em — dash", "ascii", "«quotes»"],  # two-byte code points beside narrow texts
        ["rocket 🚀", "a" * 5000, "digits 0123456789"],  # one astral character
        ["line\u2028separator", "\t\r\n"],
        ["single"],
    ],
)
def test_a_request_counts_as_its_texts_joined_by_newlines(texts: list[str]) -> None:
    """Texts are counted one by one (one wide character would otherwise widen the whole
    joined request), with exactly the result of counting them joined."""
    request = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": t} for t in texts]}]
    }
    joined = {"messages": [{"role": "user", "content": "\n".join(texts)}]}
    assert estimate_tokens(request) == estimate_tokens(joined)
