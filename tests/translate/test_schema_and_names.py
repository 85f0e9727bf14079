"""Tool schemas and names are made acceptable to OpenAI-compatible servers (docs/wire.md, "Request translation")."""

from __future__ import annotations

import re

import pytest

from cc_nemo.translate.names import MAX_TOOL_NAME, upstream_tool_name
from cc_nemo.translate.schema import sanitize_schema, sanitize_tool_schema

CLAUDE_CODE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "command": {"type": "string", "description": "The command"},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 9007199254740991},
        "format": {"type": "string", "format": "uri"},
        "mode": {"const": "fast"},
        "tags": {"type": "array", "items": {"type": "string", "$comment": "x"}},
        "meta": {
            "type": "object",
            "propertyNames": {"pattern": "^a"},
            "additionalProperties": {"type": "string"},
        },
    },
    "required": ["command"],
    "additionalProperties": False,
}


def test_claude_code_schema_keywords_are_sanitised() -> None:
    assert sanitize_tool_schema(CLAUDE_CODE_SCHEMA) == {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The command"},
            "timeout": {"type": "number", "maximum": 9007199254740991, "minimum": 0},
            "format": {"type": "string"},
            "mode": {"enum": ["fast"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "meta": {"type": "object"},
        },
        "required": ["command"],
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "integer", "exclusiveMinimum": 0}, {"type": "integer", "minimum": 1}),
        ({"type": "integer", "exclusiveMaximum": 10}, {"type": "integer", "maximum": 9}),
        (
            {"type": "integer", "minimum": 5, "exclusiveMinimum": 0},
            {"type": "integer", "minimum": 5},
        ),
        (
            {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            {"type": "number", "minimum": 0},
        ),
        ({"type": "string", "format": "date-time"}, {"type": "string", "format": "date-time"}),
        ({"const": 1, "enum": [1, 2]}, {"enum": [1, 2]}),
        (
            {"anyOf": [{"const": "a"}, {"$id": "x", "type": "null"}]},
            {"anyOf": [{"enum": ["a"]}, {"type": "null"}]},
        ),
        (
            {"$defs": {"A": {"$comment": "c", "type": "string"}}, "$ref": "#/$defs/A"},
            {"$defs": {"A": {"type": "string"}}, "$ref": "#/$defs/A"},
        ),
        (
            {"allOf": [{"oneOf": [{"examples": [1], "type": "integer"}]}]},
            {"allOf": [{"oneOf": [{"type": "integer"}]}]},
        ),
    ],
)
def test_schema_nodes_are_cleaned_recursively(schema: dict, expected: dict) -> None:
    assert sanitize_schema(schema) == expected


def test_property_named_like_a_keyword_is_kept() -> None:
    schema = {
        "type": "object",
        "properties": {"$schema": {"type": "string"}, "const": {"type": "number"}},
    }
    assert sanitize_tool_schema(schema)["properties"] == schema["properties"]


@pytest.mark.parametrize("schema", [None, "nope", {}, {"type": "string"}, {"properties": []}])
def test_tool_parameters_are_always_an_object_schema(schema: object) -> None:
    cleaned = sanitize_tool_schema(schema)
    assert cleaned["type"] == "object" and isinstance(cleaned["properties"], dict)


def test_sanitising_does_not_mutate_the_request() -> None:
    schema = {"type": "object", "properties": {"a": {"const": 1, "$comment": "c"}}}
    sanitize_tool_schema(schema)
    assert schema == {"type": "object", "properties": {"a": {"const": 1, "$comment": "c"}}}


VALID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@pytest.mark.parametrize(
    "name",
    [
        "mcp__" + "very_long_server_name_" * 4 + "__tool",
        "mcp__server__tool.with.dots",
        "tool with spaces",
        "ünïcode",
        "x" * 65,
    ],
)
def test_long_or_invalid_tool_names_are_shortened_deterministically(name: str) -> None:
    shortened = upstream_tool_name(name)
    assert VALID.match(shortened) and len(shortened) <= MAX_TOOL_NAME
    assert shortened == upstream_tool_name(name)
    assert shortened != name


def test_valid_tool_names_are_unchanged() -> None:
    for name in ("Bash", "mcp__github__create_issue", "a" * 64):
        assert upstream_tool_name(name) == name


def test_names_differing_only_in_invalid_characters_stay_distinct() -> None:
    assert upstream_tool_name("a.b") != upstream_tool_name("a:b")
    assert upstream_tool_name("a.b") != "a_b"
