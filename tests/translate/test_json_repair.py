"""Tool arguments always become a JSON object (docs/wire.md, "Response translation")."""

from __future__ import annotations

import pytest

from cc_nemo.translate.json_repair import compact_json, parse_arguments


@pytest.mark.parametrize(
    ("arguments", "expected", "usable"),
    [
        ({"a": 1}, {"a": 1}, True),
        ('{"a": 1}', {"a": 1}, True),
        ("", {}, True),
        ("   ", {}, True),
        (None, {}, True),
        ('```json\n{"a": 1}\n```', {"a": 1}, True),
        ('{"a": [1, 2,], }', {"a": [1, 2]}, True),
        ('{"command": "ls -la', {"command": "ls -la"}, True),
        ('{"a": {"b": [1, 2', {"a": {"b": [1, 2]}}, True),
        ('{"a": ', {"a": None}, True),
        ("[1, 2]", {"value": [1, 2]}, True),
        ("42", {"value": 42}, True),
        ('"text"', {"value": "text"}, True),
        ([1, 2], {"value": [1, 2]}, True),
        ("not json at all", {"_raw": "not json at all"}, False),
        # Text after a complete object (a stray brace, the whole arguments repeated): the
        # first object, which is what a streamed block has already closed on.
        ('{"a": 1}}', {"a": 1}, True),
        ('{"a": 1}{"a": 1}', {"a": 1}, True),
        ('{"a": 1}, "b": 2}', {"a": 1}, True),
    ],
)
def test_arguments_are_parsed_or_repaired_into_an_object(
    arguments: object, expected: dict, usable: bool
) -> None:
    assert parse_arguments(arguments) == (expected, usable)


def test_compact_json_keeps_non_ascii_and_has_no_spaces() -> None:
    assert compact_json({"k": "é 🌍", "n": [1, 2]}) == '{"k":"é 🌍","n":[1,2]}'


def test_compact_json_falls_back_for_huge_integers() -> None:
    assert compact_json({"n": 2**70}) == '{"n":1180591620717411303424}'
