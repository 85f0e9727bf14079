"""Hostile request bodies: whatever a client sends, validation and translation end in a clear
InvalidRequest or an upstream body orjson can encode, never an exception of another kind."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cc_nemo.translate.json_repair import compact_json, parse_arguments, repair_json
from cc_nemo.translate.request import (
    MAX_NESTING_DEPTH,
    InvalidRequest,
    translate_request,
    validate_request,
)
from cc_nemo.translate.schema import sanitize_schema, sanitize_tool_schema
from cc_nemo.translate.tokens import estimate_tokens

from .support import PLAIN, builtin

SPECS = (PLAIN, builtin("nemotron"), builtin("gpt-oss"))


def request(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-x",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    body.update(fields)
    return body


def nested(depth: int, leaf: Any = None) -> Any:
    """`depth` levels of objects, built without recursion."""
    value: Any = {} if leaf is None else leaf
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def tool_use_history(tool_input: Any) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": tool_input}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
        },
    ]


def translated_body(body: dict[str, Any]) -> bytes:
    """The upstream body as the relay would send it (orjson must be able to encode it)."""
    return orjson.dumps(translate_request(body, PLAIN, upstream_model="plain-model").body)


# ---- stop_sequences ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [5, True, 1.5, "END", {"a": "b"}])
def test_stop_sequences_that_are_not_a_list_are_refused_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidRequest, match=r"^stop_sequences: must be a list of strings$"):
        validate_request(request(stop_sequences=value))


@pytest.mark.parametrize("value", [["END", 5], ["END", None], ["END", ["x"]]])
def test_stop_sequences_with_a_non_string_are_refused_naming_the_item(value: list) -> None:
    with pytest.raises(InvalidRequest, match=r"^stop_sequences\.1: must be a string$"):
        validate_request(request(stop_sequences=value))


def test_stop_sequences_list_goes_upstream_without_empty_strings() -> None:
    translated = translate_request(
        request(stop_sequences=["END", "", "STOP"]), PLAIN, upstream_model="m"
    )
    assert translated.body["stop"] == ["END", "STOP"]
    assert translated.context.stop_sequences == ("END", "STOP")
    assert (
        "stop"
        not in translate_request(request(stop_sequences=None), PLAIN, upstream_model="m").body
    )


# ---- schema `format` and bounds ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", [["date-time"], {"x": 1}, 5, None, "date-time"])
def test_schema_format_of_any_json_type_is_kept_only_when_a_safe_string(fmt: object) -> None:
    tool_schema = {"type": "object", "properties": {"when": {"type": "string", "format": fmt}}}
    output_schema = {"type": "object", "format": fmt}
    body = request(
        tools=[{"name": "Clock", "input_schema": tool_schema}],
        output_config={"format": {"type": "json_schema", "schema": output_schema}},
    )
    sent = orjson.loads(translated_body(body))
    when = sent["tools"][0]["function"]["parameters"]["properties"]["when"]
    assert ("format" in when) is (fmt == "date-time")
    assert ("format" in sent["response_format"]["json_schema"]["schema"]) is (fmt == "date-time")


@pytest.mark.parametrize("bound", [1.2345678901234568e29, 18446744073709551615, -(2**63), 1e300])
def test_huge_exclusive_bounds_stay_encodable(bound: float) -> None:
    cleaned = sanitize_schema(
        {"type": "integer", "exclusiveMinimum": bound, "exclusiveMaximum": bound}
    )
    orjson.dumps(cleaned)
    assert cleaned["minimum"] == bound and cleaned["maximum"] == bound


def test_small_integer_exclusive_bounds_still_fold_exactly() -> None:
    cleaned = sanitize_schema({"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 9.0})
    assert (cleaned["minimum"], cleaned["maximum"]) == (6, 8)


# ---- nesting -----------------------------------------------------------------------------------


# Request depth of the places below: input_schema sits at level 4, output schema at 4,
# a tool_use input at 6 (body, messages, message, content, block, input).
@pytest.mark.parametrize(
    ("where", "level"),
    [("tool_schema", 4), ("output_schema", 4), ("tool_input", 6), ("metadata", 2)],
)
def test_deepest_allowed_body_translates_and_one_more_level_is_refused(
    where: str, level: int
) -> None:
    def body(depth: int) -> dict[str, Any]:
        value = nested(depth - level + 1)
        if where == "tool_schema":
            return request(tools=[{"name": "Deep", "input_schema": value}])
        if where == "output_schema":
            return request(output_config={"format": {"type": "json_schema", "schema": value}})
        if where == "tool_input":
            return request(messages=tool_use_history(value))
        return request(metadata=value)

    deepest = body(MAX_NESTING_DEPTH)
    validate_request(deepest)
    orjson.dumps(translate_request(deepest, PLAIN, upstream_model="m").body)
    assert estimate_tokens(deepest) > 1
    with pytest.raises(InvalidRequest, match=rf"nested deeper than {MAX_NESTING_DEPTH} levels$"):
        validate_request(body(MAX_NESTING_DEPTH + 1))


@pytest.mark.parametrize("depth", [200, 254, 255, 256, 300, 1000, 1023, 10_000])
def test_nesting_past_the_limit_is_a_clear_error_at_any_depth(depth: int) -> None:
    for body in (
        request(tools=[{"name": "Deep", "input_schema": nested(depth)}]),
        request(messages=tool_use_history(nested(depth))),
        request(output_config={"format": {"type": "json_schema", "schema": nested(depth)}}),
    ):
        with pytest.raises(InvalidRequest) as raised:
            validate_request(body)
        message = str(raised.value)
        assert message.endswith(f"nested deeper than {MAX_NESTING_DEPTH} levels")
        assert len(message) < 300  # the path is clipped


def test_too_deep_error_names_the_path() -> None:
    body = request(messages=tool_use_history({"list": [nested(MAX_NESTING_DEPTH)]}))
    with pytest.raises(InvalidRequest, match=r"^messages\.1\.content\.0\.input\.list\.0\.a\.a"):
        validate_request(body)


def test_nesting_check_also_covers_lists_and_wide_bodies() -> None:
    deep_list: Any = []
    for _ in range(MAX_NESTING_DEPTH):
        deep_list = [deep_list]
    with pytest.raises(InvalidRequest, match=r"^metadata\.0\.0\.0"):
        validate_request(request(metadata=deep_list))
    # Wide but shallow is fine, whatever its size.
    validate_request(request(metadata=[[0] * 1000 for _ in range(1000)]))


# ---- JSON helpers past orjson's limits ---------------------------------------------------------


def test_compact_json_encodes_any_depth_without_recursion() -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    assert compact_json(deep) == "[" * 5001 + "]" * 5001
    mixed = {"k": 'é "q" 🌍', "n": [1, 2.5, None, True], "big": 2**70, "o": {}}
    wrapped: Any = mixed
    for _ in range(300):
        wrapped = {"w": wrapped}
    expected = (
        '{"w":' * 300 + json.dumps(mixed, ensure_ascii=False, separators=(",", ":")) + "}" * 300
    )
    assert compact_json(wrapped) == expected


def test_json_repair_gives_up_on_text_python_cannot_parse_without_recursing_away() -> None:
    assert repair_json('{"a":' * 3000) is None
    assert repair_json("[" * 3000 + "NaN") is None
    assert parse_arguments("[" * 3000) == ({"_raw": "[" * 3000}, False)


def test_token_estimate_counts_long_texts_in_slices_like_one_piece() -> None:
    # 3 MB with multi-byte characters straddling every 1 MiB slice boundary.
    unit = "ab1, é🌍\n"
    text = unit * (3 * 1024 * 1024 // len(unit))
    expected = (
        0.22 * text.count("a") * 2  # a, b
        + 0.22 * (text.count(" ") + text.count("\n"))
        + 0.9 * text.count("1")
        + 0.45 * text.count(",")
        + 1.0 * (text.count("é") + text.count("🌍"))
    )
    overhead = estimate_tokens({"messages": [{"role": "user", "content": ""}]})
    request = {"messages": [{"role": "user", "content": text}]}
    assert estimate_tokens(request) == round(expected) + overhead


def test_token_estimate_survives_values_orjson_refuses() -> None:
    deep: Any = {}
    for _ in range(5000):
        deep = {"a": deep}
    body = request(messages=tool_use_history(deep), tools=[{"name": "T", "input_schema": deep}])
    assert estimate_tokens(body) > 1
    assert estimate_tokens(request(messages=tool_use_history({"n": 2**70}))) > 1


# ---- property: any JSON in any field -----------------------------------------------------------

_characters = st.characters(codec="utf-8", exclude_categories=("Cs",))
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=_characters, max_size=20),
)
_json = st.recursive(
    _leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(alphabet=_characters, max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)
_SCHEMA_KEYWORDS = (
    "type", "properties", "items", "required", "format", "enum", "const", "anyOf", "oneOf",
    "allOf", "not", "if", "then", "else", "additionalProperties", "patternProperties", "$defs",
    "definitions", "prefixItems", "contains", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "$schema", "examples", "description",
)  # fmt: skip
_schemas = st.recursive(
    st.dictionaries(st.sampled_from(_SCHEMA_KEYWORDS), _leaf, max_size=4),
    lambda children: st.dictionaries(
        st.sampled_from(_SCHEMA_KEYWORDS),
        st.one_of(
            children,
            st.lists(children, max_size=3),
            st.dictionaries(st.text(max_size=6), children, max_size=3),
            _json,
        ),
        max_size=5,
    ),
    max_leaves=10,
)
_BLOCK_TYPES = (
    "text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking", "document",
    "search_result", "mid_conv_system", "tool_reference", "server_tool_use", "bogus",
)  # fmt: skip
_BLOCK_FIELDS = (
    "text", "input", "content", "source", "name", "id", "tool_use_id", "is_error", "thinking",
    "title", "tool_name", "data", "media_type", "cache_control",
)  # fmt: skip
_blocks = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    st.one_of(st.sampled_from(_BLOCK_TYPES), _json),
    st.dictionaries(
        st.sampled_from(_BLOCK_FIELDS),
        st.one_of(_json, st.lists(st.deferred(lambda: _blocks), max_size=2), _schemas),
        max_size=4,
    ),
)
_messages = st.fixed_dictionaries(
    {
        "role": st.one_of(st.sampled_from(["user", "assistant", "system"]), _json),
        "content": st.one_of(
            st.text(alphabet=_characters, max_size=30),
            st.lists(st.one_of(_blocks, _json), max_size=4),
            _json,
        ),
    }
)
_tools = st.fixed_dictionaries(
    {"name": st.one_of(st.text(alphabet=_characters, max_size=80), _json)},
    optional={
        "type": st.one_of(st.sampled_from(["custom", "bash_20250124", "web_search"]), _json),
        "description": _json,
        "input_schema": st.one_of(_schemas, _json),
    },
)
_OPTIONAL_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "system": st.one_of(_json, st.lists(_blocks, max_size=3)),
    "tools": st.one_of(st.lists(_tools, max_size=5), _json),
    "tool_choice": st.one_of(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["auto", "any", "tool", "none", "x"])},
            optional={"name": _json, "disable_parallel_tool_use": _json},
        ),
        _json,
    ),
    "stop_sequences": st.one_of(st.lists(st.text(max_size=5), max_size=3), _json),
    "stream": _json,
    "temperature": _json,
    "top_p": _json,
    "top_k": _json,
    "thinking": st.one_of(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["enabled", "disabled", "adaptive"])},
            optional={"budget_tokens": _json},
        ),
        _json,
    ),
    "output_config": st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "effort": st.one_of(st.sampled_from(["low", "max", "none"]), _json),
                "format": st.one_of(
                    st.fixed_dictionaries({"type": st.just("json_schema"), "schema": _schemas}),
                    _json,
                ),
            },
        ),
        _json,
    ),
    "output_format": _json,
    "metadata": _json,
}
hostile_bodies = st.one_of(
    st.fixed_dictionaries(
        {
            "model": st.one_of(st.just("claude-x"), _json),
            "max_tokens": st.one_of(st.integers(min_value=0, max_value=2**64 - 1), _json),
            "messages": st.one_of(st.lists(_messages, min_size=1, max_size=4), _json),
        },
        optional=_OPTIONAL_FIELDS,
    ),
    _json,
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=hostile_bodies, spec=st.sampled_from(SPECS))
def test_any_body_is_refused_clearly_or_translated_into_an_encodable_body(
    body: Any, spec: Any
) -> None:
    # What the relay does with a parsed body: orjson parsed it, so it encodes again.
    body = orjson.loads(orjson.dumps(body))
    try:
        validate_request(body)
    except InvalidRequest as exc:
        assert str(exc)
        return
    assert estimate_tokens(body) >= 1
    try:
        translated = translate_request(body, spec, upstream_model=spec.model)
    except InvalidRequest as exc:
        assert str(exc)  # no tools on this model, or the prompt overflows it
        return
    orjson.dumps(translated.body)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=st.one_of(_schemas, _json))
def test_any_tool_schema_sanitizes_into_an_object_schema(schema: Any) -> None:
    cleaned = sanitize_tool_schema(schema)
    assert cleaned["type"] == "object" and isinstance(cleaned["properties"], dict)
    orjson.dumps(cleaned)
