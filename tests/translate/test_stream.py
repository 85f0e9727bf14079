"""OpenAI chunk stream → Anthropic events (docs/wire.md, "The stream state machine")."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from cc_nemo.translate import AnthropicError, encode_event, fold_events
from cc_nemo.translate.stream import synthetic_signature

from .support import (
    ID_PATTERN,
    assert_valid_stream,
    blocks,
    builtin,
    context,
    final_delta,
    render_sse,
    run_chunks,
    run_sse_bytes,
    sdk_accumulate,
    translator,
)


def delta(finish: str | None = None, **fields: Any) -> dict:
    choice: dict[str, Any] = {"index": 0, "delta": fields}
    if finish is not None:
        choice["finish_reason"] = finish
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [choice]}


def fragment(
    index: int | None = None,
    *,
    id: str | None = None,
    name: str | None = None,
    arguments: Any = None,
) -> dict:
    out: dict[str, Any] = {}
    if index is not None:
        out["index"] = index
    if id is not None:
        out["id"] = id
        out["type"] = "function"
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    if function:
        out["function"] = function
    return out


def usage_chunk(prompt: int = 10, completion: int = 5, cached: int = 0) -> dict:
    return {
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    }


def checked(events: list[dict]) -> list[dict]:
    """Every scenario's events must be valid for the SDK and fold the same as the SDK does."""
    assert_valid_stream(events)
    if events[-1]["type"] == "message_stop":
        ours = fold_events(events)
        theirs = sdk_accumulate(events)
        assert ours["content"] == theirs["content"]
        assert ours["stop_reason"] == theirs["stop_reason"]
        assert ours["usage"] == {k: theirs["usage"][k] for k in ours["usage"]}
    return events


def tool_inputs(events: list[dict]) -> list[tuple[str, dict]]:
    message = fold_events(events)
    return [(b["name"], b["input"]) for b in message["content"] if b["type"] == "tool_use"]


# --- framing (docs/wire.md, "The stream state machine") ---------------------------------------------------------


def test_message_start_comes_first_once_with_estimated_usage() -> None:
    events = checked(run_chunks([delta(content="hi"), delta("stop")], context(estimated_input=321)))
    start = events[0]
    assert start["type"] == "message_start"
    assert start["message"]["usage"]["input_tokens"] == 321
    assert start["message"]["usage"]["output_tokens"] == 1
    assert start["message"]["model"] == "claude-test"
    assert start["message"]["content"] == []


def test_every_encoded_frame_has_an_event_line() -> None:
    events = checked(run_chunks([delta(reasoning="r"), delta(content="t"), delta("stop")]))
    for event in events:
        assert encode_event(event).startswith(b"event: " + event["type"].encode() + b"\ndata: ")


def test_reasoning_opens_its_own_thinking_block_before_text() -> None:
    events = checked(
        run_chunks(
            [
                delta(role="assistant", content=""),
                delta(reasoning_content="Let me "),
                delta(reasoning_content="think."),
                delta(content="Answer."),
                delta("stop"),
            ]
        )
    )
    assert blocks(events) == [("thinking", "Let me think."), ("text", "Answer.")]
    thinking_deltas = [
        e["delta"] for e in events if e["type"] == "content_block_delta" and e["index"] == 0
    ]
    assert thinking_deltas[-1] == {
        "type": "signature_delta",
        "signature": synthetic_signature("Let me think."),
    }
    assert re.fullmatch(r"ccp1\.[0-9a-f]{16}", thinking_deltas[-1]["signature"])


def test_interleaved_reasoning_and_text_give_separate_blocks_in_order() -> None:
    events = checked(
        run_chunks(
            [
                delta(reasoning="a"),
                delta(content="b"),
                delta(reasoning="c"),
                delta(content="d"),
                delta("stop"),
            ]
        )
    )
    assert blocks(events) == [("thinking", "a"), ("text", "b"), ("thinking", "c"), ("text", "d")]


@pytest.mark.parametrize(
    ("delta_fields", "expected"),
    [
        ({"reasoning_content": "rc", "reasoning": "r"}, "rc"),
        ({"reasoning": "r"}, "r"),
        ({"reasoning_details": [{"type": "reasoning.text", "text": "details"}]}, "details"),
        ({"reasoning": "r", "reasoning_details": [{"type": "reasoning.text", "text": "r"}]}, "r"),
    ],
)
def test_reasoning_field_precedence(delta_fields: dict, expected: str) -> None:
    events = checked(run_chunks([delta(**delta_fields), delta("stop")]))
    assert blocks(events) == [("thinking", expected)]


# --- no empty deltas or blocks (docs/wire.md, "The stream state machine") --------------------------------------------------


def test_empty_and_whitespace_only_pieces_never_open_blocks() -> None:
    events = checked(
        run_chunks(
            [
                delta(role="assistant", content=""),
                delta(reasoning=""),
                delta(reasoning="\n\n"),
                delta(content=None),
                delta(content="  "),
                delta(content="Hi"),
                delta(content=""),
                delta("stop"),
            ]
        )
    )
    assert blocks(events) == [("text", "Hi")]


def test_empty_reply_is_a_valid_empty_message() -> None:
    events = checked(run_chunks([delta(role="assistant", content=""), delta("stop")]))
    assert blocks(events) == []
    assert final_delta(events)["delta"]["stop_reason"] == "end_turn"


# --- inline think tags (docs/wire.md, "The stream state machine") -----------------------------------------------------------


def test_think_tags_straddling_chunks_become_a_thinking_block() -> None:
    events = checked(
        run_chunks(
            [
                delta(content="<thi"),
                delta(content="nk>plan"),
                delta(content=" more</th"),
                delta(content="ink>\n\nDone."),
                delta("stop"),
            ]
        )
    )
    assert blocks(events) == [("thinking", "plan more"), ("text", "Done.")]


def test_r1_style_reply_without_opening_tag_is_split_for_that_model() -> None:
    events = checked(
        run_chunks(
            [delta(content="I should greet."), delta(content="</think>\n\nHello!"), delta("stop")],
            context(builtin("r1")),
        )
    )
    assert blocks(events) == [("thinking", "I should greet."), ("text", "Hello!")]


def test_gemma_channel_markup_is_split() -> None:
    events = checked(
        run_chunks([delta(content="<|channel>thought\nhmm<channel|>Yes."), delta("stop")])
    )
    assert blocks(events) == [("thinking", "hmm"), ("text", "Yes.")]


def test_content_held_as_a_possible_tag_is_released_in_order_when_reasoning_appears() -> None:
    events = checked(
        run_chunks([delta(content="<"), delta(reasoning="r"), delta(content="b"), delta("stop")])
    )
    assert blocks(events) == [("text", "<"), ("thinking", "r"), ("text", "b")]


def test_think_tags_are_left_alone_when_structured_reasoning_is_present() -> None:
    events = checked(
        run_chunks(
            [delta(reasoning="real"), delta(content="<think>literal</think>"), delta("stop")]
        )
    )
    assert blocks(events) == [("thinking", "real"), ("text", "<think>literal</think>")]


# --- tool calls (docs/wire.md, "The stream state machine") -------------------------------------------------

LONG_COMMAND = (
    "find . -name '*.py' -print0 | xargs -0 grep -n \"def \\\"quoted\\\"\" && echo 'ünïcødé ✓ 🚀' "
    "| sed -e 's/a/b/g' > /tmp/out.txt; if [ $? -eq 0 ]; then cat <<'EOF'\nmulti\nline\nEOF\nfi "
) * 4


def test_incremental_arguments_with_escapes_and_unicode_arrive_exactly() -> None:
    arguments = orjson.dumps({"command": LONG_COMMAND, "description": "Search"}).decode()
    assert len(arguments.encode()) > 700
    pieces = [arguments[i : i + 7] for i in range(0, len(arguments), 7)]
    chunks = [delta(tool_calls=[fragment(0, id="call_1", name="Bash", arguments="")])]
    chunks += [delta(tool_calls=[fragment(0, arguments=p)]) for p in pieces]
    chunks += [delta("tool_calls"), usage_chunk()]
    events = checked(run_chunks(chunks, context(tools=["Bash"])))
    assert tool_inputs(events) == [("Bash", {"command": LONG_COMMAND, "description": "Search"})]
    assert final_delta(events)["delta"]["stop_reason"] == "tool_use"


def test_arguments_bundled_with_name_in_the_first_fragment() -> None:
    events = checked(
        run_chunks(
            [
                delta(
                    tool_calls=[fragment(0, id="c", name="Read", arguments='{"file_path":"/a"}')]
                ),
                delta("tool_calls"),
            ]
        )
    )
    assert tool_inputs(events) == [("Read", {"file_path": "/a"})]


def test_several_tool_calls_in_one_chunk_interleaved() -> None:
    events = checked(
        run_chunks(
            [
                delta(
                    tool_calls=[
                        fragment(0, id="a", name="Read", arguments='{"file_path":'),
                        fragment(1, id="b", name="Bash", arguments='{"comm'),
                    ]
                ),
                delta(
                    tool_calls=[fragment(1, arguments='and":"ls"}'), fragment(0, arguments='"/x"}')]
                ),
                delta("tool_calls"),
            ]
        )
    )
    assert tool_inputs(events) == [("Read", {"file_path": "/x"}), ("Bash", {"command": "ls"})]


def test_name_arriving_after_the_arguments() -> None:
    events = checked(
        run_chunks(
            [
                delta(tool_calls=[fragment(0, arguments='{"a":')]),
                delta(tool_calls=[fragment(0, arguments="1}")]),
                delta(tool_calls=[fragment(0, id="late", name="Tool")]),
                delta("tool_calls"),
            ]
        )
    )
    assert tool_inputs(events) == [("Tool", {"a": 1})]


def test_object_arguments_replace_the_buffer() -> None:
    events = checked(
        run_chunks(
            [
                delta(tool_calls=[fragment(0, id="c", name="T", arguments='{"partial')]),
                delta(tool_calls=[fragment(0, arguments={"x": [1, "é"]})]),
                delta("stop"),
            ]
        )
    )
    assert tool_inputs(events) == [("T", {"x": [1, "é"]})]


def test_null_finaliser_fragments_are_ignored() -> None:
    null_fragment = {
        "index": 0,
        "id": None,
        "type": None,
        "function": {"name": None, "arguments": None},
    }
    events = checked(
        run_chunks(
            [
                delta(tool_calls=[fragment(0, id="c", name="T", arguments='{"a":1}')]),
                delta(tool_calls=[null_fragment]),
                delta(tool_calls=[{"function": {}}]),
                delta("tool_calls"),
            ]
        )
    )
    assert tool_inputs(events) == [("T", {"a": 1})]


def test_missing_index_continues_the_last_call() -> None:
    events = checked(
        run_chunks(
            [
                delta(tool_calls=[{"id": "c", "function": {"name": "T", "arguments": '{"a"'}}]),
                delta(tool_calls=[{"function": {"arguments": ":2}"}}]),
                delta("stop"),
            ]
        )
    )
    assert tool_inputs(events) == [("T", {"a": 2})]


def test_missing_index_continues_the_most_recent_call_not_the_first() -> None:
    events = checked(
        run_chunks(
            [
                delta(tool_calls=[fragment(0, id="a", name="A", arguments="{}")]),
                delta(tool_calls=[fragment(1, id="b", name="B", arguments='{"x"')]),
                delta(tool_calls=[{"function": {"arguments": ":1}"}}]),
                delta("tool_calls"),
            ]
        )
    )
    assert tool_inputs(events) == [("A", {}), ("B", {"x": 1})]


def test_new_id_on_a_reused_index_is_a_new_call() -> None:
    events = checked(
        run_chunks(
            [
                delta(
                    tool_calls=[
                        fragment(
                            0, id="functions.Read:0", name="Read", arguments='{"file_path":"/a"}'
                        )
                    ]
                ),
                delta(
                    tool_calls=[
                        fragment(
                            0, id="functions.Read:1", name="Read", arguments='{"file_path":"/b"}'
                        )
                    ]
                ),
                delta("tool_calls"),
            ]
        )
    )
    assert tool_inputs(events) == [("Read", {"file_path": "/a"}), ("Read", {"file_path": "/b"})]


def test_repeated_id_and_name_on_every_fragment_stay_one_call() -> None:
    events = checked(
        run_chunks(
            [
                delta(tool_calls=[fragment(0, id="x", name="T", arguments='{"a"')]),
                delta(tool_calls=[fragment(0, id="x", name="T", arguments=":3}")]),
                delta("stop"),
            ]
        )
    )
    assert tool_inputs(events) == [("T", {"a": 3})]


def test_emitted_tool_ids_are_fresh_and_valid_never_upstream_ids() -> None:
    events = checked(
        run_chunks(
            [
                delta(
                    tool_calls=[
                        fragment(0, id="functions.Bash:0", name="Bash", arguments="{}"),
                        fragment(1, name="Read", arguments="{}"),
                    ]
                ),
                delta("tool_calls"),
            ]
        )
    )
    ids = [e["content_block"]["id"] for e in events if e["type"] == "content_block_start"]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert all(ID_PATTERN.match(i) and "functions" not in i for i in ids)


def test_text_after_a_started_tool_call_goes_after_the_tool_blocks() -> None:
    # The tool_use block is out as soon as its name is known, so text that comes later can
    # only follow it (it used to be moved before the buffered tool calls).
    events = checked(
        run_chunks(
            [
                delta(tool_calls=[fragment(0, id="c", name="T", arguments="{}")]),
                delta(content="Running T now."),
                delta("tool_calls"),
            ]
        )
    )
    assert blocks(events) == [("tool_use:T", "{}"), ("text", "Running T now.")]


def test_text_before_a_tool_call_has_a_name_still_comes_first() -> None:
    events = checked(
        run_chunks(
            [
                delta(tool_calls=[fragment(0, arguments='{"a":1}')]),
                delta(content="Running T now."),
                delta(tool_calls=[fragment(0, id="c", name="T")]),
                delta("tool_calls"),
            ]
        )
    )
    assert blocks(events) == [("text", "Running T now."), ("tool_use:T", '{"a":1}')]


def test_text_held_as_a_possible_think_tag_goes_before_the_tool_call_after_it() -> None:
    # "<" may start "<think>", so the splitter holds it; it arrived before the call, so it
    # goes out before the call's block, as the non-streamed translation has it.
    for held in ("<", "  <thi"):
        events = checked(
            run_chunks(
                [
                    delta(content=held),
                    delta(tool_calls=[fragment(0, id="c", name="T", arguments="{}")]),
                    delta("tool_calls"),
                ]
            )
        )
        assert blocks(events) == [("text", held.lstrip()), ("tool_use:T", "{}")]


def test_tool_call_with_no_arguments_gets_an_empty_object_not_missing_input() -> None:
    events = checked(
        run_chunks(
            [delta(tool_calls=[fragment(0, id="c", name="T", arguments="")]), delta("tool_calls")]
        )
    )
    assert tool_inputs(events) == [("T", {})]
    json_deltas = [e for e in events if e["type"] == "content_block_delta"]
    assert json_deltas[0]["delta"] == {"type": "input_json_delta", "partial_json": "{}"}


def test_unrepairable_arguments_become_raw_unless_cut_off_by_length() -> None:
    chunks = [delta(tool_calls=[fragment(0, id="c", name="T", arguments="not json")])]
    events = checked(run_chunks([*chunks, delta("tool_calls")]))
    assert tool_inputs(events) == [("T", {"_raw": "not json"})]
    cut = checked(run_chunks([*chunks, delta("length")]))
    assert tool_inputs(cut) == []
    assert final_delta(cut)["delta"]["stop_reason"] == "max_tokens"


def test_cut_off_arguments_that_can_be_closed_are_kept() -> None:
    events = checked(
        run_chunks(
            [
                delta(tool_calls=[fragment(0, id="c", name="T", arguments='{"a":"b')]),
                delta("length"),
            ]
        )
    )
    assert tool_inputs(events) == [("T", {"a": "b"})]


def test_tool_call_without_a_name_is_dropped() -> None:
    events = checked(
        run_chunks(
            [delta(tool_calls=[fragment(0, id="c", arguments='{"a":1}')]), delta("tool_calls")]
        )
    )
    assert tool_inputs(events) == []
    assert final_delta(events)["delta"]["stop_reason"] == "end_turn"


def test_shortened_tool_names_are_restored() -> None:
    ctx = context(tools=["mcp__server__long"], name_map={"mcp_short_1234abcd": "mcp__server__long"})
    events = checked(
        run_chunks(
            [
                delta(tool_calls=[fragment(0, id="c", name="mcp_short_1234abcd", arguments="{}")]),
                delta("tool_calls"),
            ],
            ctx,
        )
    )
    assert tool_inputs(events) == [("mcp__server__long", {})]


def test_disable_parallel_tool_use_keeps_only_the_first_call() -> None:
    events = checked(
        run_chunks(
            [
                delta(
                    tool_calls=[
                        fragment(0, id="a", name="A", arguments="{}"),
                        fragment(1, id="b", name="B", arguments="{}"),
                    ]
                ),
                delta("tool_calls"),
            ],
            context(disable_parallel=True),
        )
    )
    assert tool_inputs(events) == [("A", {})]


# --- chunk shapes (docs/wire.md, "Model quirks") -------------------------------------------------


def test_content_and_finish_reason_in_one_chunk() -> None:
    events = checked(run_chunks([delta("stop", content="All at once.")]))
    assert blocks(events) == [("text", "All at once.")]


def test_usage_only_final_chunk_with_empty_choices_is_used() -> None:
    events = checked(
        run_chunks([delta(content="hi"), delta("stop"), usage_chunk(1000, 42, cached=600)])
    )
    assert final_delta(events)["usage"] == {
        "input_tokens": 400,
        "output_tokens": 42,
        "cache_read_input_tokens": 600,
        "cache_creation_input_tokens": 0,
    }


def test_cumulative_usage_on_every_chunk_keeps_the_last() -> None:
    chunks = []
    for n, piece in enumerate(["a", "b", "c"], start=1):
        chunk = delta(content=piece)
        chunk["usage"] = {"prompt_tokens": 50, "completion_tokens": n}
        chunks.append(chunk)
    chunks.append(
        {
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 4},
        }
    )
    events = checked(run_chunks(chunks))
    assert final_delta(events)["usage"]["output_tokens"] == 4
    assert final_delta(events)["usage"]["input_tokens"] == 50


def test_finish_reason_only_on_the_final_usage_chunk() -> None:
    final = usage_chunk(20, 3)
    final["choices"] = [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    events = checked(run_chunks([delta(content="ok"), final], done=False))
    assert final_delta(events)["delta"]["stop_reason"] == "end_turn"
    assert final_delta(events)["usage"]["input_tokens"] == 20


def test_missing_usage_falls_back_to_estimates() -> None:
    ctx = context(estimated_input=777)
    stream = translator(ctx)
    events = stream.start() + stream.feed(delta(content="x" * 40)) + stream.finish(saw_done=True)
    checked(events)
    assert final_delta(events)["usage"]["input_tokens"] == 777
    assert final_delta(events)["usage"]["output_tokens"] == 10
    assert stream.usage.output_tokens == 10


def test_final_chunk_repeating_the_whole_message_does_not_duplicate_text() -> None:
    final = {
        "choices": [
            {
                "index": 0,
                "delta": {},
                "message": {"content": "Hello there"},
                "finish_reason": "stop",
            }
        ]
    }
    events = checked(run_chunks([delta(content="Hello "), delta(content="there"), final]))
    assert blocks(events) == [("text", "Hello there")]


def test_chunk_id_changing_mid_stream_is_harmless() -> None:
    first, second = delta(content="a"), delta("stop", content="b")
    second["id"] = "other"
    assert blocks(checked(run_chunks([first, second]))) == [("text", "ab")]


# --- stop reasons (docs/wire.md, "Response translation") -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "ctx_args", "expected"),
    [
        ([delta("stop", content="x")], {}, ("end_turn", None)),
        ([delta("length", content="x")], {}, ("max_tokens", None)),
        ([delta("content_filter", content="x")], {}, ("refusal", None)),
        ([delta(content="x")], {}, ("end_turn", None)),
        ([delta("tool_calls", content="x")], {}, ("end_turn", None)),
        (
            [delta("stop", tool_calls=[fragment(0, id="c", name="T", arguments="{}")])],
            {},
            ("tool_use", None),
        ),
        (
            [
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": "x"},
                            "finish_reason": "stop",
                            "stop_reason": "END",
                        }
                    ]
                }
            ],
            {"stop_sequences": ["END"]},
            ("stop_sequence", "END"),
        ),
        (
            [
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": "x"},
                            "finish_reason": "stop",
                            "stop_reason": 128009,
                        }
                    ]
                }
            ],
            {"stop_sequences": ["END"]},
            ("end_turn", None),
        ),
        (
            [
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": "x"},
                            "finish_reason": "stop",
                            "stop_reason": "OTHER",
                        }
                    ]
                }
            ],
            {"stop_sequences": ["END"]},
            ("end_turn", None),
        ),
    ],
)
def test_finish_reason_maps_to_stop_reason(chunks, ctx_args, expected) -> None:
    events = checked(run_chunks(chunks, context(**ctx_args)))
    got = final_delta(events)["delta"]
    assert (got["stop_reason"], got["stop_sequence"]) == expected


def test_refusal_text_is_a_text_block() -> None:
    events = checked(run_chunks([delta("content_filter", refusal="I can't help with that.")]))
    assert blocks(events) == [("text", "I can't help with that.")]
    assert final_delta(events)["delta"]["stop_reason"] == "refusal"


# --- endings and errors (docs/wire.md, "The stream state machine") ----------------------------------------------------------


def test_eof_after_finish_reason_without_done_completes_normally() -> None:
    events = checked(run_chunks([delta(content="hi"), delta("stop")], done=False))
    assert events[-1] == {"type": "message_stop"}


def test_eof_without_finish_reason_is_an_error_never_a_fake_end_turn() -> None:
    events = checked(run_chunks([delta(reasoning="hmm"), delta(content="partial")], done=False))
    assert events[-1] == {
        "type": "error",
        "error": {"type": "api_error", "message": "upstream stream truncated"},
    }
    assert not any(e["type"] in ("message_delta", "message_stop") for e in events)


def test_error_payload_inside_the_stream_ends_it_with_an_error_event() -> None:
    stream = translator(context())
    events = stream.start() + stream.feed(delta(content="partial"))
    events += stream.feed({"error": {"message": "3040: Capacity temporarily exceeded"}})
    checked(events)
    assert events[-1]["type"] == "error" and events[-1]["error"]["type"] == "overloaded_error"
    assert stream.finished
    assert stream.feed(delta(content="more")) == []
    assert stream.finish(saw_done=True) == []


@pytest.mark.parametrize(
    "payload",
    [
        {"success": False, "errors": [{"code": 3040, "message": "Capacity temporarily exceeded"}]},
        {"object": "error", "message": "Capacity temporarily exceeded", "code": 3040},
        {"error": "Capacity temporarily exceeded"},
    ],
)
def test_every_form_of_error_payload_in_a_stream_ends_it(payload: dict) -> None:
    stream = translator(context())
    events = stream.start() + stream.feed(delta(content="partial"))
    events += stream.feed(payload)
    checked(events)
    assert events[-1]["type"] == "error"
    assert stream.finished


@pytest.mark.parametrize(
    "chunks",
    [
        # Not errors: a falsy error field, a success flag on a chunk with choices.
        [delta(content="partial", finish="stop") | {"error": None}],
        [delta(content="partial", finish="stop") | {"success": False}],
        [delta(content="partial", finish="stop") | {"success": True, "object": "chunk"}],
    ],
)
def test_chunks_with_error_like_fields_that_are_not_errors_stream_on(chunks: list[dict]) -> None:
    events = checked(run_chunks(chunks))
    assert blocks(events) == [("text", "partial")]


@pytest.mark.parametrize(
    "content",
    [
        [{"type": "text", "text": "par"}, {"type": "text", "text": "tial"}],
        [{"type": "text", "text": "partial"}, {"type": "image_url"}],
    ],
)
def test_content_as_a_list_of_parts_streams_its_texts(content: list[dict]) -> None:
    events = checked(run_chunks([delta(role="assistant", content=content), delta(finish="stop")]))
    assert blocks(events) == [("text", "partial")]


def test_fail_emits_one_error_event_and_nothing_after() -> None:
    stream = translator(context())
    events = stream.start() + stream.feed(delta(content="x"))
    events += stream.fail(AnthropicError(529, "overloaded_error", "Overloaded"))
    checked(events)
    assert stream.fail(AnthropicError(500, "api_error", "again")) == []
    assert stream.finished


def test_start_is_emitted_once_even_if_called_twice() -> None:
    stream = translator(context())
    assert len(stream.start()) == 1
    assert stream.start() == []


def test_feed_before_start_still_starts_with_message_start() -> None:
    stream = translator(context())
    events = stream.feed(delta(content="hi")) + stream.finish(saw_done=True)
    checked(events)


# --- per-model behaviour (docs/wire.md, "Model quirks") ----------------------------------------------------


def test_reasoning_only_reply_is_also_given_as_text_for_nemotron() -> None:
    events = checked(
        run_chunks(
            [delta(reasoning="The answer is 4."), delta("stop")], context(builtin("nemotron"))
        )
    )
    assert blocks(events) == [("thinking", "The answer is 4."), ("text", "The answer is 4.")]


def test_reasoning_only_reply_stays_thinking_without_the_quirk() -> None:
    events = checked(run_chunks([delta(reasoning="The answer is 4."), delta("stop")]))
    assert blocks(events) == [("thinking", "The answer is 4.")]


def test_reasoning_fallback_is_not_used_when_a_tool_was_called() -> None:
    events = checked(
        run_chunks(
            [
                delta(reasoning="call it"),
                delta(tool_calls=[fragment(0, id="c", name="T", arguments="{}")]),
                delta("tool_calls"),
            ],
            context(builtin("nemotron")),
        )
    )
    assert blocks(events) == [("thinking", "call it"), ("tool_use:T", "{}")]


GPT_OSS = builtin("gpt-oss")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"name": "Bash", "arguments": {"command": "ls"}}', [("Bash", {"command": "ls"})]),
        ('{"name": "Bash", "parameters": {"command": "ls"}}', [("Bash", {"command": "ls"})]),
        ('{"name": "Bash", "command": "ls"}', [("Bash", {"command": "ls"})]),
        (
            '```json\n{"name": "Bash", "arguments": "{\\"command\\": \\"ls\\"}"}\n```',
            [("Bash", {"command": "ls"})],
        ),
        (
            '[{"name": "Bash", "arguments": {"command": "a"}}, {"name": "Read", "arguments": {"file_path": "/b"}}]',
            [("Bash", {"command": "a"}), ("Read", {"file_path": "/b"})],
        ),
        (
            '{"type": "function", "function": {"name": "Read", "arguments": {"file_path": "/c"}}}',
            [("Read", {"file_path": "/c"})],
        ),
    ],
)
def test_leaked_tool_call_json_is_salvaged_into_tool_use(content: str, expected: list) -> None:
    pieces = [content[i : i + 5] for i in range(0, len(content), 5)]
    events = checked(
        run_chunks(
            [delta(content=p) for p in pieces] + [delta("stop")],
            context(GPT_OSS, tools=["Bash", "Read"], forced_tool=True),
        )
    )
    assert tool_inputs(events) == expected
    assert not any(kind == "text" for kind, _ in blocks(events))
    assert final_delta(events)["delta"]["stop_reason"] == "tool_use"


def test_null_finaliser_does_not_stop_a_leaked_call_from_being_salvaged() -> None:
    null_fragment = {"index": 0, "id": None, "type": None, "function": {"name": None}}
    events = checked(
        run_chunks(
            [
                delta(content='{"name": "Bash", "arguments": {"command": "ls"}}'),
                delta(tool_calls=[null_fragment]),
                delta("stop"),
            ],
            context(GPT_OSS, tools=["Bash"]),
        )
    )
    assert tool_inputs(events) == [("Bash", {"command": "ls"})]


@pytest.mark.parametrize(
    "content",
    [
        '{"name": "NotOffered", "arguments": {}}',
        '{"title": "Just JSON"}',
        "[1, 2, 3]",
        "```python\nprint(1)\n```",
    ],
)
def test_json_text_that_is_not_an_offered_tool_call_stays_text(content: str) -> None:
    events = checked(
        run_chunks([delta(content=content), delta("stop")], context(GPT_OSS, tools=["Bash"]))
    )
    assert blocks(events) == [("text", content)]
    assert final_delta(events)["delta"]["stop_reason"] == "end_turn"


def test_plain_text_is_not_held_back_for_salvage() -> None:
    stream = translator(context(GPT_OSS, tools=["Bash"]))
    stream.start()
    events = stream.feed(delta(content="Sure, "))
    assert [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"] == ["Sure, "]


def test_salvage_is_off_for_models_without_the_quirk() -> None:
    content = '{"name": "Bash", "arguments": {"command": "ls"}}'
    events = checked(run_chunks([delta(content=content), delta("stop")], context(tools=["Bash"])))
    assert blocks(events) == [("text", content)]


def test_prefill_is_prepended_to_the_reply_text() -> None:
    events = checked(
        run_chunks(
            [delta(reasoning="r"), delta(content='"a": 1}'), delta("stop")], context(prefill="{")
        )
    )
    assert blocks(events) == [("thinking", "r"), ("text", '{"a": 1}')]


def test_prefill_alone_is_still_returned() -> None:
    events = checked(run_chunks([delta("stop")], context(prefill="Sure")))
    assert blocks(events) == [("text", "Sure")]


# --- the wire end to end: bytes in, events out (docs/wire.md, "The stream state machine") -------------------------------------


def test_sse_bytes_split_everywhere_with_crlf_give_the_same_events() -> None:
    chunks = [
        delta(role="assistant", content=""),
        delta(reasoning="Thinking about ünïcode 🌍"),
        delta(content='Answer with "quotes" and 日本語'),
        delta(
            tool_calls=[
                fragment(0, id="call_1", name="Bash", arguments='{"command":"echo \\"é\\""}')
            ]
        ),
        delta("tool_calls"),
        usage_chunk(100, 20, cached=30),
    ]
    ctx = context(tools=["Bash"])
    reference = checked(run_sse_bytes([render_sse(chunks)], ctx))
    raw = render_sse(chunks, newline=b"\r\n")
    assert run_sse_bytes([raw[i : i + 1] for i in range(len(raw))], ctx) == reference
    assert run_sse_bytes([raw[i : i + 13] for i in range(0, len(raw), 13)], ctx) == reference


def test_context_overflow_reported_mid_stream_uses_the_request_figures() -> None:
    ctx = context(estimated_input=300_000)
    stream = translator(ctx)
    events = stream.start() + stream.feed(
        {"error": {"message": "prompt exceeds the context window", "code": 400}}
    )
    checked(events)
    assert events[-1]["error"] == {
        "type": "invalid_request_error",
        "message": f"prompt is too long: 300000 tokens > {ctx.spec.context_window} maximum",
    }
