"""The translation memos (cc_nemo/translate/memo.py): the same output as without them, a
changed input translated afresh (same length included), and the bounds kept."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from cc_nemo.translate import memo, tokens, tools, toolset
from cc_nemo.translate import request as request_module
from cc_nemo.translate.memo import BoundedMemo
from cc_nemo.translate.request import (
    MAX_NESTING_DEPTH,
    InvalidRequest,
    check_request,
    translate_request,
    validate_request,
)
from cc_nemo.translate.tokens import estimate_tokens
from tests.translate.support import builtin

FIXTURE = Path(__file__).parent / "fixtures" / "claude_code_2_1_330_read_turn.json"
SPEC = builtin("nemotron")


@pytest.fixture(autouse=True)
def empty_memos() -> Iterator[None]:
    memo.clear_all()
    yield
    memo.clear_all()


def claude_code_request() -> dict[str, Any]:
    """The captured Claude Code request: system prompt, 21 tools, a short Read loop."""
    return orjson.loads(FIXTURE.read_bytes())


def long_text(turn: int) -> str:
    return "\n".join(f"{n}\tvalue_{n} = compute({n}, turn={turn})  # naïve" for n in range(200))


def with_history(request: dict[str, Any], turns: int) -> dict[str, Any]:
    for turn in range(turns):
        call_id = f"toolu_{turn:04d}"
        request["messages"].append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": f"Reading part {turn}."},
                    {"type": "tool_use", "id": call_id, "name": "Read", "input": {"n": turn}},
                ],
            }
        )
        request["messages"].append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call_id, "content": long_text(turn)}
                ],
            }
        )
    return request


def translated(request: dict[str, Any]) -> tuple[dict[str, Any], Any, int]:
    """Everything translation makes of a request, comparable with == (1 == 1.0 == True for
    Python, so the memo-sensitive tests below also compare the JSON)."""
    result = translate_request(copy.deepcopy(request), SPEC, upstream_model="m")
    return result.body, result.context, estimate_tokens(request)


def as_json(translation: tuple[dict[str, Any], Any, int]) -> bytes:
    return orjson.dumps(translation[0])


def fresh(request: dict[str, Any]) -> tuple[dict[str, Any], Any, int]:
    with memo.bypassed():
        return translated(request)


def test_the_real_request_translates_the_same_with_and_without_memos() -> None:
    request = with_history(claude_code_request(), 6)
    expected = fresh(request)
    assert translated(request) == expected  # cold: computed and remembered
    hits = sum(m.hits for m in memo.all_memos())
    assert translated(request) == expected  # warm: served from the memos
    assert sum(m.hits for m in memo.all_memos()) > hits
    assert translated(orjson.loads(orjson.dumps(request))) == expected  # a new parse of it


def test_bypassed_memos_remember_nothing() -> None:
    with memo.bypassed():
        translated(claude_code_request())
    assert all(len(m) == 0 for m in memo.all_memos())


def _tool(request: dict[str, Any], name: str) -> dict[str, Any]:
    return next(tool for tool in request["tools"] if tool["name"] == name)


def _change_schema_property(request: dict[str, Any]) -> None:
    schema = _tool(request, "Read")["input_schema"]
    schema["properties"]["limit"]["description"] += " Now different."


def _same_length_schema_property(request: dict[str, Any]) -> None:
    prop = _tool(request, "Read")["input_schema"]["properties"]["file_path"]
    text = prop["description"]
    prop["description"] = "X" + text[1:]


def _same_length_schema_key(request: dict[str, Any]) -> None:
    schema = _tool(request, "Read")["input_schema"]
    schema["properties"]["limiT"] = schema["properties"].pop("limit")


def _schema_keyword_added(request: dict[str, Any]) -> None:
    schema = _tool(request, "Read")["input_schema"]
    schema["properties"]["limit"]["exclusiveMinimum"] = 1


def _history_block_text(request: dict[str, Any]) -> None:
    block = request["messages"][-1]["content"][0]
    block["content"] = block["content"].replace("compute", "COMPUTE")  # same length


def _history_block_digit(request: dict[str, Any]) -> None:
    # A letter for a digit: the same length, other token counts.
    block = request["messages"][-3]["content"][0]
    block["content"] = block["content"].replace("value_1", "value_x", 1)


def _history_block_last_char(request: dict[str, Any]) -> None:
    block = request["messages"][-1]["content"][0]
    block["content"] = block["content"][:-1] + "7"  # "ï" -> "7": the very last character


def _system_prompt(request: dict[str, Any]) -> None:
    system = request["system"]
    block = max(system, key=lambda b: len(b["text"]))
    block["text"] = block["text"][:-5] + "12345"  # same length


def _tool_description_same_length(request: dict[str, Any]) -> None:
    tool = _tool(request, "Bash")
    tool["description"] = tool["description"].replace("a", "4", 3)


@pytest.mark.parametrize(
    "change",
    [
        _change_schema_property,
        _same_length_schema_property,
        _same_length_schema_key,
        _schema_keyword_added,
        _history_block_text,
        _history_block_digit,
        _history_block_last_char,
        _system_prompt,
        _tool_description_same_length,
    ],
)
def test_a_changed_input_is_translated_afresh(change: Callable[[dict[str, Any]], None]) -> None:
    request = with_history(claude_code_request(), 4)
    before = translated(request)  # remembered
    changed = copy.deepcopy(request)
    change(changed)
    assert changed != request
    after = translated(changed)
    assert after == fresh(changed)
    assert as_json(after) == as_json(fresh(changed))
    assert after != before
    # And the original is still what it was.
    assert translated(request) == before


@pytest.mark.parametrize("values", [(1, 1.0), (1, True), (0, False), (0.0, -0.0)])
def test_values_python_calls_equal_are_different_keys(values: tuple[object, object]) -> None:
    """1 == 1.0 == True in Python, not in the JSON sent upstream: each is its own entry."""
    sent = []
    for value in values:
        request = claude_code_request()
        _tool(request, "Read")["input_schema"]["properties"]["limit"]["default"] = value
        translated(request)  # remembered
        result = translated(request)
        assert as_json(result) == as_json(fresh(request))
        sent.append(as_json(result))
    assert sent[0] != sent[1]


def test_a_changed_schema_reaches_the_upstream_function() -> None:
    request = claude_code_request()
    translated(request)
    _same_length_schema_property(request)
    body = translate_request(request, SPEC, upstream_model="m").body
    read = next(f["function"] for f in body["tools"] if f["function"]["name"] == "Read")
    assert read["parameters"]["properties"]["file_path"]["description"].startswith("X")


def test_equal_tools_in_another_order_keep_their_order() -> None:
    request = claude_code_request()
    translated(request)
    request["tools"].reverse()
    assert translated(request) == fresh(request)


def test_a_tool_that_json_cannot_key_is_translated_without_the_memo() -> None:
    request = claude_code_request()
    # Only Python callers can build this: orjson refuses integers beyond 64 bits.
    _tool(request, "Read")["input_schema"]["properties"]["limit"]["maximum"] = 2**70
    assert translated(request) == fresh(request)
    assert translated(request) == fresh(request)


def test_the_memos_stay_within_their_bounds() -> None:
    for turn in range(400):
        request = with_history(claude_code_request(), 0)
        for tool in request["tools"]:
            tool["description"] = f"{turn} " + tool["description"]
        request["messages"].append({"role": "user", "content": long_text(turn)})
        translated(request)
    for m in memo.all_memos():
        assert len(m) <= m.max_entries, m.name
        assert m.weight <= m.max_weight, m.name
    # ~3 KB a tool: the byte budget binds, and is nearly full.
    for m in (tools._FUNCTIONS, tokens._TOOL_COUNTS):
        assert m.weight > m.max_weight - 20_000, m.name


def test_the_tool_memos_keep_their_entry_count() -> None:
    for n in range(tools.TOOL_MEMO_MAX_ENTRIES + 300):
        request = {
            "model": "m",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": f"tool_{n}", "input_schema": {"type": "object"}}],
        }
        translated(request)
    assert len(tools._FUNCTIONS) == tools.TOOL_MEMO_MAX_ENTRIES
    assert len(tokens._TOOL_COUNTS) == tokens.TOOL_MEMO_MAX_ENTRIES


def test_the_text_memo_keeps_its_entry_count_and_no_text() -> None:
    texts = [f"{n:06d} " + "word " * 200 for n in range(tokens.TEXT_MEMO_MAX_ENTRIES + 500)]
    with memo.bypassed():
        expected = [estimate_tokens({"messages": [{"role": "user", "content": t}]}) for t in texts]
    got = [estimate_tokens({"messages": [{"role": "user", "content": t}]}) for t in texts]
    assert got == expected
    counts = tokens._TEXT_COUNTS
    assert len(counts) == tokens.TEXT_MEMO_MAX_ENTRIES
    # A length and a hash, not the texts: nothing of a 1 KB text stays alive with its entry.
    assert all(type(length) is int and type(digest) is int for length, digest in counts._entries)


def test_a_text_longer_than_a_slice_is_remembered_whole() -> None:
    # Hashed whole, counted slice by slice: a change in the last slice is a new entry.
    text = "a" * (tokens._SLICE + 10)
    changed = text[:-1] + "7"
    with memo.bypassed():
        expected = [
            estimate_tokens({"messages": [{"role": "user", "content": t}]}) for t in (text, changed)
        ]
    assert [
        estimate_tokens({"messages": [{"role": "user", "content": t}]}) for t in (text, changed)
    ] == expected
    assert expected[0] != expected[1]


def test_short_texts_are_counted_not_remembered() -> None:
    estimate_tokens(
        {"messages": [{"role": "user", "content": "x" * (tokens.TEXT_MEMO_MIN_CHARS - 1)}]}
    )
    assert len(tokens._TEXT_COUNTS) == 0
    estimate_tokens({"messages": [{"role": "user", "content": "x" * tokens.TEXT_MEMO_MIN_CHARS}]})
    assert len(tokens._TEXT_COUNTS) == 1


# ---- the memo itself -------------------------------------------------------------------------


def make_memo(entries: int, weight: int) -> BoundedMemo[str, int]:
    return BoundedMemo("test", max_entries=entries, max_weight=weight)


def test_a_memo_computes_once_per_key() -> None:
    calls: list[str] = []
    m = make_memo(4, 100)

    def compute(key: str) -> Callable[[], int]:
        def run() -> int:
            calls.append(key)
            return len(key)

        return run

    assert m.get("ab", 2, compute("ab")) == 2
    assert m.get("ab", 2, compute("ab")) == 2
    assert m.get("abc", 3, compute("abc")) == 3
    assert calls == ["ab", "abc"]
    assert (m.hits, m.misses) == (1, 2)


def test_a_memo_drops_the_least_recently_used_first() -> None:
    m = make_memo(3, 1000)
    for key in "abc":
        m.get(key, 1, lambda: 0)
    m.get("a", 1, lambda: 0)  # a is now the most recent
    m.get("d", 1, lambda: 0)  # drops b
    computed: list[str] = []
    for key in "acd":
        m.get(key, 1, lambda key=key: computed.append(key) or 0)
    assert computed == []
    m.get("b", 1, lambda: computed.append("b") or 0)
    assert computed == ["b"]
    assert len(m) == 3


def test_a_memo_keeps_its_weight_budget() -> None:
    m = make_memo(100, 10)
    m.get("a", 4, lambda: 1)
    m.get("b", 4, lambda: 2)
    m.get("c", 4, lambda: 3)  # 12 > 10: a goes
    assert (len(m), m.weight) == (2, 8)
    assert m.get("big", 11, lambda: 4) == 4  # heavier than the budget: computed, not kept
    assert (len(m), m.weight) == (2, 8)
    m.clear()
    assert (len(m), m.weight) == (0, 0)


# ---- tools that passed the nesting check -------------------------------------------------------


def nested_schema(depth: int, leaf: Any = None) -> Any:
    """An object schema `depth` levels deep (properties.a.properties.a...)."""
    value: Any = {"type": "string"} if leaf is None else leaf
    for _ in range(depth):
        value = {"type": "object", "properties": {"a": value}}
    return value


def with_deep_tool(request: dict[str, Any], depth: int) -> dict[str, Any]:
    request = copy.deepcopy(request)
    request["tools"].append({"name": "Deep", "input_schema": nested_schema(depth)})
    return request


def test_a_remembered_tool_is_not_walked_but_a_changed_one_is() -> None:
    request = claude_code_request()
    validate_request(request)  # the 21 tools are remembered as within the limit
    assert len(request_module._WITHIN_NESTING) == len(request["tools"])
    # The same tools plus one too deep: refused, and the error names the new tool's path.
    too_deep = with_deep_tool(request, 70)
    with pytest.raises(InvalidRequest, match=r"^tools\.21\.input_schema\.properties\.a\."):
        validate_request(too_deep)
    # One level less passes; the tools before it were not walked again.
    hits = request_module._WITHIN_NESTING.hits
    validate_request(with_deep_tool(request, 61))
    assert request_module._WITHIN_NESTING.hits == hits + len(request["tools"])


def test_a_remembered_tool_does_not_hide_the_rest_of_the_body() -> None:
    request = claude_code_request()
    validate_request(request)
    deep: Any = []
    for _ in range(MAX_NESTING_DEPTH):
        deep = [deep]
    with pytest.raises(InvalidRequest, match=r"^metadata\.0\.0"):
        validate_request({**request, "metadata": deep})


def test_a_deep_tool_is_refused_with_and_without_memos_alike() -> None:
    request = claude_code_request()
    for depth in (61, 62, 63, 100, 300):
        body = with_deep_tool(request, depth)
        outcomes = []
        for bypass in (True, False, False):
            try:
                if bypass:
                    with memo.bypassed():
                        validate_request(body)
                else:
                    validate_request(body)
                outcomes.append("ok")
            except InvalidRequest as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1] == outcomes[2], depth


def test_only_the_json_form_of_a_tool_is_remembered() -> None:
    """The walk enters exact lists and dicts; a Python caller's tuples escape it, so a tool
    whose JSON is too deep is never remembered, whatever object stood for it."""
    deep_tuples: Any = "x"
    deep_lists: Any = "x"
    for _ in range(MAX_NESTING_DEPTH):
        deep_tuples = (deep_tuples,)
        deep_lists = [deep_lists]
    request = claude_code_request()
    tool = {"name": "Deep", "input_schema": {"type": "object", "examples": deep_tuples}}
    validate_request({**request, "tools": [tool]})  # tuples: not walked, as before the memo
    listed = {"name": "Deep", "input_schema": {"type": "object", "examples": deep_lists}}
    assert orjson.dumps(listed) == orjson.dumps(tool)
    with pytest.raises(InvalidRequest):
        validate_request({**request, "tools": [listed]})


def test_a_checked_request_translates_like_the_request() -> None:
    request = with_history(claude_code_request(), 3)
    checked = check_request(copy.deepcopy(request))
    from_checked = translate_request(checked, SPEC, upstream_model="m")
    plain = translate_request(copy.deepcopy(request), SPEC, upstream_model="m")
    assert orjson.dumps(from_checked.body) == orjson.dumps(plain.body)
    assert from_checked.context == plain.context


def test_the_nesting_memo_keeps_its_bounds() -> None:
    for n in range(1200):
        validate_request(
            {
                "model": "m",
                "max_tokens": 1,
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"name": f"t{n}", "input_schema": {"type": "object"}}],
            }
        )
    within = request_module._WITHIN_NESTING
    assert len(within) == within.max_entries
    assert within.weight <= within.max_weight


def test_tool_keys_take_no_more_memory_than_their_json() -> None:
    """A request holds its tools' keys while it is answered (20 at once: 20 sets), and the memos
    hold them for good: orjson's own output would keep ~7x the JSON's size allocated."""
    import tracemalloc

    tools_list = claude_code_request()["tools"]
    memo.tool_keys(tools_list)  # first-call allocations (orjson's, the interpreter's) left out
    tracemalloc.start()
    try:
        keys = memo.tool_keys(tools_list)
        allocated, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    json_bytes = sum(len(key) for key in keys if key is not None)
    assert json_bytes > 50_000
    assert allocated < 1.5 * json_bytes


# ---- the whole tools list (toolset.py) -------------------------------------------------------


def test_a_tools_list_seen_before_is_recalled_whole() -> None:
    request = claude_code_request()
    first = check_request(copy.deepcopy(request))
    assert len(toolset._RECENT) == 1
    per_tool_hits = sum(m.hits for m in (tools._FUNCTIONS, tokens._TOOL_COUNTS))
    again = check_request(orjson.loads(orjson.dumps(request)))  # a new parse of the same list
    assert again.tools is first.tools
    assert toolset._RECENT.hits == 1
    # Nothing per tool: no tool encoded, looked up or walked again.
    assert sum(m.hits for m in (tools._FUNCTIONS, tokens._TOOL_COUNTS)) == per_tool_hits


@pytest.mark.parametrize(
    "change",
    [_same_length_schema_property, _same_length_schema_key, _tool_description_same_length],
)
def test_a_changed_tools_list_is_a_new_entry(change: Callable[[dict[str, Any]], None]) -> None:
    request = claude_code_request()
    kept = check_request(copy.deepcopy(request)).tools
    changed = copy.deepcopy(request)
    change(changed)
    assert len(orjson.dumps(changed["tools"])) == len(orjson.dumps(request["tools"]))
    fresh_set = check_request(changed).tools
    assert fresh_set is not kept
    with memo.bypassed():
        expected = check_request(copy.deepcopy(changed)).tools
    assert as_values(fresh_set) == as_values(expected) != as_values(kept)
    assert len(toolset._RECENT) == 2


def as_values(tool_set: toolset.ToolSet | None) -> tuple[object, ...]:
    """A ToolSet as comparable values (an orjson.Fragment compares by identity)."""
    assert tool_set is not None
    functions = tool_set.functions
    encoded = orjson.dumps(functions.encoded)
    assert encoded == orjson.dumps(functions.functions)
    return orjson.dumps(functions.functions), functions.names, tool_set.tally, encoded


def test_a_reordered_tools_list_keeps_its_order() -> None:
    request = claude_code_request()
    check_request(copy.deepcopy(request))
    reversed_request = {**request, "tools": list(reversed(request["tools"]))}
    body = translate_request(copy.deepcopy(reversed_request), SPEC, upstream_model="m").body
    assert [f["function"]["name"] for f in body["tools"]] == [
        t["name"] for t in reversed_request["tools"]
    ]


def test_a_tools_list_with_a_deep_tool_is_never_recalled() -> None:
    request = with_deep_tool(claude_code_request(), 70)
    for _ in range(2):
        with pytest.raises(InvalidRequest, match=r"^tools\.21\."):
            validate_request(copy.deepcopy(request))
    assert len(toolset._RECENT) == 0


def test_a_tools_list_python_nests_past_json_is_not_kept() -> None:
    """A tuple-nested tool passes the walk, but its JSON would not: the list is translated,
    never kept as checked (the walk must see the JSON form the next time)."""
    deep_tuples: Any = "x"
    for _ in range(MAX_NESTING_DEPTH):
        deep_tuples = (deep_tuples,)
    tool = {"name": "Deep", "input_schema": {"type": "object", "examples": deep_tuples}}
    checked = check_request({**claude_code_request(), "tools": [tool]})
    assert checked.tools is not None
    assert len(toolset._RECENT) == 0


def test_bypassed_memos_recall_no_tools_list() -> None:
    request = claude_code_request()
    check_request(copy.deepcopy(request))
    with memo.bypassed():
        assert check_request(copy.deepcopy(request)).tools is not None
    assert toolset._RECENT.hits == 0


def test_the_recent_lists_keep_their_bounds_most_recent_first() -> None:
    recent: memo.RecentMemo[int] = memo.RecentMemo("test", max_entries=3, max_weight=100)
    for n in range(5):
        recent.add(bytes([n]) * 10, n)
    assert len(recent) == 3
    assert recent.find(bytes([0]) * 10) is None  # the oldest went first
    assert recent.find(bytes([2]) * 10) == 2  # now the most recent
    recent.add(bytes([5]) * 10, 5)
    assert recent.find(bytes([3]) * 10) is None
    assert [recent.find(bytes([n]) * 10) for n in (2, 4, 5)] == [2, 4, 5]
    recent.add(b"x" * 90, 9)  # the weight budget: 90 + 10 + 10 > 100
    assert recent.weight <= 100
    assert recent.find(b"x" * 90) == 9
    recent.add(b"y" * 101, 0)  # heavier than the whole budget: not kept
    assert recent.find(b"y" * 101) is None
    recent.add(b"x" * 90, 10)  # the same key again: replaced, not doubled
    assert recent.find(b"x" * 90) == 10
    assert sum(1 for key, _ in recent._entries if key == b"x" * 90) == 1


def test_the_body_to_send_encodes_as_the_body() -> None:
    """The upstream body carries the kept tools list already encoded (orjson.Fragment)."""
    request = with_history(claude_code_request(), 2)
    for _ in range(2):  # built, then recalled
        result = translate_request(copy.deepcopy(request), SPEC, upstream_model="m")
        assert result.to_send["tools"] is not result.body["tools"]
        assert orjson.dumps(result.to_send) == orjson.dumps(result.body)
    no_tools = {**request, "tools": []}
    result = translate_request(no_tools, SPEC, upstream_model="m")
    assert result.to_send is result.body
