"""The upstream request body costs its own size in memory, not orjson's reserved buffer."""

from __future__ import annotations

import tracemalloc

import orjson
import pytest

from cc_nemo.proxy.bodies import exact_json


@pytest.mark.parametrize(
    "value",
    [
        {"messages": [{"role": "tool", "content": "ü" * 200_000}]},  # one long non-ASCII string
        {"messages": [{"role": "user", "content": "x" * 100}] * 2000},  # many short ones
        {"model": "m", "messages": []},
    ],
)
def test_upstream_body_is_the_json_in_a_buffer_of_its_own_size(value: dict) -> None:
    orjson.dumps(value)  # strings keep their UTF-8 form once made: not the body's cost
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        encoded = exact_json(value)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert encoded == orjson.dumps(value)
    assert held <= len(encoded) + 4096
