"""Tool calls stream as they are written (docs/wire.md, "How tool-call arguments stream"): the
block starts once the name is known, the input follows as far as no later fragment or repair
can change it, and what the client assembles is what the buffered translator gave. No tool_use
block stops before the upstream's stream has ended: Claude Code runs a stopped block at once."""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cc_nemo.translate import fold_events
from cc_nemo.translate.json_repair import ObjectPrefix, compact_json, parse_arguments

from .support import assert_valid_stream, blocks, context, final_delta, translator

EXAMPLES = int(os.environ.get("CC_PROXY_PROPERTY_EXAMPLES", "300"))


def chunk(finish: str | None = None, **fields: Any) -> dict:
    choice: dict[str, Any] = {"index": 0, "delta": fields}
    if finish is not None:
        choice["finish_reason"] = finish
    return {"object": "chat.completion.chunk", "choices": [choice]}


def call(index: int = 0, *, id: str | None = None, name: str | None = None, arguments: Any = None):
    fragment: dict[str, Any] = {"index": index, "function": {}}
    if id is not None:
        fragment["id"] = id
    if name is not None:
        fragment["function"]["name"] = name
    if arguments is not None:
        fragment["function"]["arguments"] = arguments
    return fragment


def feed_each(chunks: list[dict], *, finish: str = "tool_calls", **ctx: Any) -> list[list[dict]]:
    """The events each chunk gave; then the finish chunk's, then the end's (`[DONE]`)."""
    stream = translator(context(**ctx))
    per_chunk = [stream.start()]
    for item in chunks:
        per_chunk.append(stream.feed(item))
    per_chunk.append(stream.feed(chunk(finish)))
    per_chunk.append(stream.finish(saw_done=True))
    return per_chunk


def feed_then_drop(chunks: list[dict], **ctx: Any) -> list[dict]:
    """The events of a stream that ends before any finish_reason (a dropped connection)."""
    stream = translator(context(**ctx))
    events = stream.start()
    for item in chunks:
        events += stream.feed(item)
    return events + stream.finish(saw_done=False)


def tool_stops_before_the_end(per_chunk: list[list[dict]]) -> list[dict]:
    """The content_block_stop events of tool_use blocks sent before the upstream's end."""
    tool_indices: set[int] = set()
    stops = []
    for events in per_chunk[:-1]:
        for event in events:
            if event["type"] == "content_block_start":
                if event["content_block"]["type"] == "tool_use":
                    tool_indices.add(event["index"])
            elif event["type"] == "content_block_stop" and event["index"] in tool_indices:
                stops.append(event)
    return stops


def flat(per_chunk: list[list[dict]]) -> list[dict]:
    return [event for events in per_chunk for event in events]


def input_texts(events: list[dict]) -> list[str]:
    """Each tool_use block's input as the client concatenates it."""
    return [text for kind, text in blocks(events) if kind.startswith("tool_use")]


def buffered(raw: str) -> str:
    """What the buffered translator wrote for these arguments: one delta of this text."""
    return compact_json(parse_arguments(raw)[0])


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({cut for cut in cuts if 0 < cut < len(text)})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def argument_chunks(pieces: list[str], *, name_first: bool = True) -> list[dict]:
    head = [chunk(tool_calls=[call(0, id="c1", name="Write", arguments="")])] if name_first else []
    body = [chunk(tool_calls=[call(0, arguments=piece)]) for piece in pieces]
    tail = [] if name_first else [chunk(tool_calls=[call(0, id="c1", name="Write")])]
    return [*head, *body, *tail]


def stream_arguments(
    pieces: list[str], *, name_first: bool = True, finish: str = "tool_calls"
) -> list[list[dict]]:
    chunks = argument_chunks(pieces, name_first=name_first)
    return feed_each(chunks, finish=finish, tools=["Write"])


def emitted_prefixes(events: list[dict]) -> list[str]:
    """The tool input as the client has it after each input_json_delta."""
    so_far, prefixes = "", []
    for event in events:
        if event["type"] == "content_block_delta" and event["delta"]["type"] == "input_json_delta":
            so_far += event["delta"]["partial_json"]
            prefixes.append(so_far)
    return prefixes


# --- property: random argument JSON, split anywhere --------------------------------------------

_chars = st.characters(codec="utf-8", exclude_categories=("Cs",))
_strings = st.one_of(
    st.text(alphabet=_chars, max_size=20),
    st.text(alphabet='a"\\/\n\t\x00\x1f é😀\u2028,}]{[:', max_size=20),
)
_numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
)
_values = st.recursive(
    st.one_of(st.none(), st.booleans(), _numbers, _strings),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_strings, children, max_size=4)
    ),
    max_leaves=12,
)
_objects = st.dictionaries(_strings, _values, max_size=5)


def _render(value: dict, style: str) -> str:
    """The same object as different upstreams write it."""
    if style == "compact":
        return compact_json(value)
    if style == "ascii":  # \uXXXX escapes, surrogate pairs for emoji
        return json.dumps(value)
    if style == "indented":
        return json.dumps(value, indent=2, ensure_ascii=False)
    if style == "spaced":
        return "  " + json.dumps(value, ensure_ascii=False) + "\n"
    return json.dumps(value, ensure_ascii=False).replace("/", "\\/")  # escaped solidus


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=_objects,
    style=st.sampled_from(["compact", "ascii", "indented", "spaced", "solidus"]),
    cuts=st.lists(st.integers(0, 400), max_size=30),
    name_first=st.booleans(),
)
def test_any_argument_json_split_anywhere_streams_to_the_buffered_input(
    value: dict, style: str, cuts: list[int], name_first: bool
) -> None:
    raw = _render(value, style)
    per_chunk = stream_arguments(split(raw, cuts), name_first=name_first)
    events = flat(per_chunk)
    assert_valid_stream(events)
    expected = buffered(raw)
    # The client's concatenated input is exactly the buffered translator's one delta...
    assert input_texts(events) == [expected]
    assert orjson.loads(expected) == parse_arguments(raw)[0]
    # ...and nothing sent on the way was ever taken back.
    for prefix in emitted_prefixes(events):
        assert expected.startswith(prefix)
    # All of a complete object went out as it arrived; only the block's stop waited for the
    # upstream's end (not even the finish_reason chunk closes it).
    assert tool_stops_before_the_end(per_chunk) == []
    assert [event["type"] for event in per_chunk[-1]] == [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    if name_first:
        # The block started with the name, before any argument arrived.
        assert per_chunk[1][0]["type"] == "content_block_start"
    # Had the upstream dropped instead of finishing, the block would never have stopped.
    dropped = feed_then_drop(argument_chunks(split(raw, cuts), name_first=name_first))
    assert not any(event["type"] == "content_block_stop" for event in dropped)
    assert dropped[-1]["type"] == "error"


_damage = st.sampled_from(["cut", "trailing_commas", "nan", "raw_control", "garbage", "repeat"])


def _damaged(raw: str, damage: str, at: int) -> str:
    if damage == "cut":
        return raw[: at % (len(raw) + 1)]
    if damage == "trailing_commas":
        return (
            raw.replace("}", ",}").replace("]", " , ]").replace("{,}", "{}").replace("[ , ]", "[]")
        )
    if damage == "nan":
        return raw.replace("null", "NaN")
    if damage == "raw_control":
        return raw.replace("\\n", "\n").replace("\\t", "\t")
    if damage == "repeat":
        return raw + raw
    position = at % (len(raw) + 1)
    return raw[:position] + "}x'" + raw[position:]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=_objects,
    damage=_damage,
    at=st.integers(0, 400),
    cuts=st.lists(st.integers(0, 400), max_size=20),
    other_cuts=st.lists(st.integers(0, 400), max_size=20),
    finish=st.sampled_from(["tool_calls", "stop", "length"]),
)
def test_damaged_arguments_close_as_valid_json_the_same_for_any_split(
    value: dict, damage: str, at: int, cuts: list[int], other_cuts: list[int], finish: str
) -> None:
    raw = _damaged(_render(value, "compact"), damage, at)
    per_chunk = stream_arguments(split(raw, cuts), finish=finish)
    assert tool_stops_before_the_end(per_chunk) == []
    events = flat(per_chunk)
    assert_valid_stream(events)  # every closed tool block's input parses to an object
    # Any chunking gives the same final message.
    again = flat(stream_arguments(split(raw, other_cuts), finish=finish))
    assert fold_events(again) == fold_events(events)
    texts = input_texts(events)
    if not texts:  # dropped: past repair after a `length` finish, before anything went out
        assert finish == "length" and not parse_arguments(raw)[1]
        return
    (text,) = texts
    for prefix in emitted_prefixes(events):
        assert text.startswith(prefix)
    arguments, usable = parse_arguments(raw)
    streamed = orjson.loads(text)
    if usable:
        # Every repair the buffered path makes, streamed (NaN compared as it is written: null).
        assert streamed == orjson.loads(compact_json(arguments))
    else:  # marked unusable, with the raw text where the tool will see it
        assert {"_raw": raw} in (streamed, *streamed.values())
    assert final_delta(events)["delta"]["stop_reason"] == "tool_use"


# --- the streaming normaliser, fed one character at a time ---------------------------------------


def _normalised(raw: str) -> str:
    prefix, out = ObjectPrefix(), ""
    for char in raw:
        prefix.feed(char)
        out += prefix.take()
    return out


def test_what_a_repair_may_still_change_is_held_back() -> None:
    # A comma waits for what follows it (a trailing one is dropped); a key for its colon; a
    # number or literal for its end; an escape or surrogate pair for its last character.
    assert _normalised('{"a": 1,') == '{"a":1'
    assert _normalised('{"a": 1, "bc"') == '{"a":1'
    assert _normalised('{"a": 12') == '{"a":'
    assert _normalised('{"a": tru') == '{"a":'
    assert _normalised('{"a": "x\\u00') == '{"a":"x'
    assert _normalised('{"a": "x\\ud83d') == '{"a":"x'
    assert _normalised('{"a": "x\\ud83d\\ude00') == '{"a":"x😀'
    assert _normalised('{"a": [1, 2.50, 1E2, -0, null], "b": {}}') == (
        '{"a":[1,2.5,100.0,0,null],"b":{}}'
    )


def test_text_that_is_not_an_object_is_never_streamed() -> None:
    for raw in ('```json\n{"a": 1}\n```', "[1, 2]", "42", "not json"):
        assert _normalised(raw) == ""


# --- event order and timing ------------------------------------------------------------------------


def test_block_starts_with_the_name_and_input_follows_each_fragment() -> None:
    per_chunk = feed_each(
        [
            chunk(content="Writing it."),
            chunk(tool_calls=[call(0, id="c", name="Write", arguments="")]),
            chunk(tool_calls=[call(0, arguments='{"file_path": "/a.py", ')]),
            chunk(tool_calls=[call(0, arguments='"content": "print(1)\\n')]),
            chunk(tool_calls=[call(0, arguments='"}')]),
        ],
        tools=["Write"],
    )
    kinds = [[event["type"] for event in events] for events in per_chunk]
    # The text block closes before the tool block opens, in the chunk that named the tool.
    assert kinds[2] == ["content_block_stop", "content_block_start"]
    assert per_chunk[2][1]["content_block"] == {
        "type": "tool_use",
        "id": "toolu_000000000000000000000001",
        "name": "Write",
        "input": {},
    }
    pieces = [
        [e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta"]
        for events in per_chunk[3:6]
    ]
    assert pieces == [['{"file_path":"/a.py"'], [',"content":"print(1)\\n'], ['"}']]
    # The object closed in chunk 5, but the block stops only when the upstream's stream ends.
    assert per_chunk[6] == []  # the finish_reason chunk
    assert per_chunk[7][0] == {"type": "content_block_stop", "index": 1}
    assert [e["type"] for e in per_chunk[7][1:]] == ["message_delta", "message_stop"]
    assert final_delta(flat(per_chunk))["delta"]["stop_reason"] == "tool_use"


def test_a_complete_call_whose_stream_drops_never_stops_its_block() -> None:
    # Claude Code runs a tool_use block the moment it stops; a stream that then fails is
    # re-sent, and the model calls the tool again. An unstopped block is discarded instead.
    events = feed_then_drop(
        [
            chunk(tool_calls=[call(0, id="c", name="Bash", arguments="")]),
            chunk(tool_calls=[call(0, arguments='{"command": "echo ran"}')]),
            chunk(tool_calls=[call(1, id="d", name="Bash", arguments='{"command": "ls"}')]),
        ],
        tools=["Bash"],
    )
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "error",
    ]
    assert events[2]["delta"]["partial_json"] == '{"command":"echo ran"}'


def test_parallel_calls_keep_their_order_and_the_others_go_out_at_the_end() -> None:
    per_chunk = feed_each(
        [
            chunk(tool_calls=[call(0, id="a", name="Read", arguments='{"file_path": "/a"')]),
            chunk(tool_calls=[call(1, id="b", name="Read", arguments='{"file_path": "/b"}')]),
            chunk(tool_calls=[call(0, arguments="}")]),
        ],
        tools=["Read"],
    )
    # The second call waits behind the open first one (one block at a time)...
    assert [e["type"] for e in per_chunk[2]] == []
    # ...which stays open once complete, until the upstream's stream ends...
    assert [e["type"] for e in per_chunk[3]] == ["content_block_delta"]
    assert per_chunk[4] == []
    # ...and then the second goes out whole.
    assert [e["type"] for e in per_chunk[5]] == [
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    events = flat(per_chunk)
    assert_valid_stream(events)
    assert input_texts(events) == ['{"file_path":"/a"}', '{"file_path":"/b"}']


def test_a_reused_index_ends_the_call_it_fed_even_without_its_closing_brace() -> None:
    per_chunk = feed_each(
        [
            chunk(tool_calls=[call(0, id="functions.Read:0", name="Read", arguments='{"a": 1')]),
            chunk(tool_calls=[call(0, id="functions.Read:1", name="Read", arguments="{")]),
        ],
        tools=["Read"],
    )
    # The first call can get no more fragments, but it is repaired and closed only at the end,
    # with the second call after it.
    assert [e["type"] for e in per_chunk[2]] == []
    assert [e["type"] for e in per_chunk[4]] == [
        "content_block_delta",  # "}"
        "content_block_stop",
        "content_block_start",
        "content_block_delta",  # "{"
        "content_block_delta",  # "}"
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert input_texts(flat(per_chunk)) == ['{"a":1}', "{}"]


def test_a_call_named_late_holds_back_the_calls_after_it_to_keep_their_order() -> None:
    per_chunk = feed_each(
        [
            chunk(tool_calls=[call(0, arguments='{"x": 1}')]),
            chunk(tool_calls=[call(1, id="b", name="B", arguments="{}")]),
            chunk(tool_calls=[call(0, id="a", name="A")]),
        ]
    )
    assert per_chunk[2] == []
    assert blocks(flat(per_chunk)) == [("tool_use:A", '{"x":1}'), ("tool_use:B", "{}")]


def test_thinking_after_a_started_tool_call_goes_after_the_tool_blocks() -> None:
    events = flat(
        feed_each(
            [
                chunk(reasoning_content="first"),
                chunk(tool_calls=[call(0, id="c", name="T", arguments='{"a":')]),
                chunk(reasoning_content="more"),
                chunk(tool_calls=[call(0, arguments="1}")]),
            ]
        )
    )
    assert_valid_stream(events)
    assert blocks(events) == [
        ("thinking", "first"),
        ("tool_use:T", '{"a":1}'),
        ("thinking", "more"),
    ]


def test_object_arguments_after_streamed_text_that_disagree_mark_the_call_unusable() -> None:
    events = flat(
        feed_each(
            [
                chunk(tool_calls=[call(0, id="c", name="T", arguments='{"path": "/a", "x')]),
                chunk(tool_calls=[call(0, arguments={"path": "/b"})]),
            ]
        )
    )
    assert_valid_stream(events)
    # '{"path":"/a"' went out; the object says "/b": neither may run as if it were the call.
    (text,) = input_texts(events)
    assert text == '{"path":"/a","path":{"_raw":"{\\"path\\":\\"/b\\"}"}}'
    assert orjson.loads(text) == {"path": {"_raw": '{"path":"/b"}'}}


def test_object_arguments_repeating_the_streamed_text_change_nothing() -> None:
    events = flat(
        feed_each(
            [
                chunk(tool_calls=[call(0, id="c", name="T", arguments='{"path": "/a"')]),
                chunk(tool_calls=[call(0, arguments={"path": "/a"})]),
            ]
        )
    )
    assert input_texts(events) == ['{"path":"/a"}']


def test_garbage_after_a_streamed_prefix_marks_the_last_key_unusable() -> None:
    events = flat(
        feed_each(
            [
                chunk(tool_calls=[call(0, id="c", name="Bash", arguments='{"command": "rm -rf ')]),
                chunk(tool_calls=[call(0, arguments='/tmp/x\\q"}')]),
            ],
            tools=["Bash"],
        )
    )
    assert_valid_stream(events)
    (text,) = input_texts(events)
    raw = '{"command": "rm -rf /tmp/x\\q"}'
    assert text == '{"command":"rm -rf /tmp/x",' + '"command":' + compact_json({"_raw": raw}) + "}"
    # The cut-off command never survives as a string the tool would run.
    assert orjson.loads(text) == {"command": {"_raw": raw}}


def test_a_started_call_cut_off_past_repair_is_kept_but_marked_unusable() -> None:
    # Buffered, it was dropped after a `length` finish; once its block is out it cannot be.
    events = flat(
        feed_each(
            [
                chunk(tool_calls=[call(0, id="c", name="T", arguments="")]),
                chunk(tool_calls=[call(0, arguments='{"a": 1, "flag": tr')]),
            ],
            finish="length",
        )
    )
    assert_valid_stream(events)
    raw = '{"a": 1, "flag": tr'
    assert orjson.loads(input_texts(events)[0]) == {"a": 1, "flag": {"_raw": raw}}
    assert final_delta(events)["delta"]["stop_reason"] == "tool_use"


def test_a_cut_off_call_that_never_started_is_still_dropped() -> None:
    events = flat(
        feed_each(
            [chunk(tool_calls=[call(0, id="c", name="T", arguments='```json\n{"a": tr')])],
            finish="length",
        )
    )
    assert input_texts(events) == []
    assert final_delta(events)["delta"]["stop_reason"] == "max_tokens"


def test_repeated_keys_close_as_sent() -> None:
    events = flat(
        feed_each([chunk(tool_calls=[call(0, id="c", name="T", arguments='{"a":1,"a":2}')])])
    )
    assert input_texts(events) == ['{"a":1,"a":2}']
    assert orjson.loads(input_texts(events)[0]) == parse_arguments('{"a":1,"a":2}')[0]


def test_disable_parallel_streams_only_the_first_call() -> None:
    events = flat(
        feed_each(
            [
                chunk(tool_calls=[call(0, id="a", name="A", arguments='{"x":')]),
                chunk(tool_calls=[call(1, id="b", name="B", arguments="{}")]),
                chunk(tool_calls=[call(0, arguments="1}")]),
            ],
            disable_parallel=True,
        )
    )
    assert blocks(events) == [("tool_use:A", '{"x":1}')]


def test_prefill_goes_out_before_a_streamed_tool_call() -> None:
    events = flat(
        feed_each([chunk(tool_calls=[call(0, id="c", name="T", arguments="{}")])], prefill="Sure")
    )
    assert blocks(events) == [("text", "Sure"), ("tool_use:T", "{}")]


def test_a_complete_object_is_the_input_whatever_comes_after_it() -> None:
    # Its block stays open until the end, but what went out is a whole object: text or an
    # object sent after it changes nothing (and never leaves the input invalid JSON).
    for later in ({"a": 2}, "{}", '"b": 2}'):
        events = flat(
            feed_each(
                [
                    chunk(tool_calls=[call(0, id="c", name="T", arguments='{"a": 1}')]),
                    chunk(tool_calls=[call(0, arguments=later)]),
                ]
            )
        )
        assert_valid_stream(events)
        assert input_texts(events) == ['{"a":1}']


def _read_only(value: Any) -> Any:
    """The same JSON as Mappings that are not dicts: the translator's general path."""
    from types import MappingProxyType

    if isinstance(value, dict):
        # Arguments stay as sent: an object there is the call's input, not a chunk's part.
        return MappingProxyType(
            {key: item if key == "arguments" else _read_only(item) for key, item in value.items()}
        )
    if isinstance(value, list):
        return [_read_only(item) for item in value]
    return value


_FRAGMENT_ARGUMENTS = st.one_of(
    st.none(),
    st.sampled_from(["", '{"a"', ": 1", ', "b": [tr', "ue]}", "}", "{}", '"x', "\\n"]),
    st.just({"a": 1}),
)
_FRAGMENTS = st.builds(
    lambda index, call_id, name, arguments, extra: {
        **call(index, id=call_id, name=name, arguments=arguments),
        **extra,
    },
    index=st.one_of(st.integers(0, 2), st.just(True), st.none()),
    call_id=st.one_of(st.none(), st.sampled_from(["", "call_1", "call_2"])),
    name=st.one_of(st.none(), st.sampled_from(["", "Bash", "Read"])),
    arguments=_FRAGMENT_ARGUMENTS,
    extra=st.sampled_from([{}, {"type": "function"}]),
)
_DELTAS = st.builds(
    lambda fragments, extra: {"tool_calls": fragments, **extra},
    fragments=st.lists(_FRAGMENTS, min_size=1, max_size=2),
    extra=st.sampled_from([{}, {"role": "assistant"}, {"content": None}, {"content": ""}]),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deltas=st.lists(_DELTAS, min_size=1, max_size=12))
def test_the_fast_paths_for_tool_fragments_translate_like_the_general_path(
    deltas: list[dict],
) -> None:
    """Plain dicts take the fast paths (a delta of tool calls only; more arguments for a known
    call); the same chunks as other Mappings take the general one: the same events."""
    chunks = [chunk(**delta) for delta in deltas]
    ctx = {"tools": ["Bash", "Read"]}
    fast = feed_each(chunks, **ctx)
    general = feed_each([_read_only(item) for item in chunks], **ctx)
    assert fast == general
