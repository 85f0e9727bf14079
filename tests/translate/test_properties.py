"""Property tests: any upstream completion, streamed in any shape and split at any byte, gives a
valid Anthropic stream that folds to the non-streamed translation (docs/architecture.md, "Invariants")."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cc_nemo.translate import fold_events, translate_completion
from cc_nemo.translate.json_repair import compact_json

from .support import (
    ID_PATTERN,
    PLAIN,
    assert_valid_stream,
    builtin,
    context,
    counter_ids,
    render_sse,
    run_sse_bytes,
    sdk_accumulate,
    split_at,
)

# Raise for a deeper local run: CC_PROXY_PROPERTY_EXAMPLES=5000 pytest tests/translate
EXAMPLES = int(os.environ.get("CC_PROXY_PROPERTY_EXAMPLES", "200"))
TOOL_NAMES = ("Bash", "Read", "mcp__server__tool")
SPECS = (PLAIN, builtin("nemotron"), builtin("gpt-oss"), builtin("r1"), builtin("kimi"))

_characters = st.characters(codec="utf-8", exclude_categories=("Cs",))
_texts = st.one_of(
    st.text(alphabet=_characters, max_size=40),
    st.text(alphabet='ab \n{}[]"<>/thinkc`|', max_size=30),
    st.sampled_from(
        [
            "<think>plan</think>answer",
            "reasoning</think>\n\nanswer",
            "<|channel>thought x<channel|>y",
            '{"name": "Bash", "arguments": {"command": "ls"}}',
            '```json\n{"name": "Read", "arguments": {"file_path": "/a"}}\n```',
            "   ",
            "",
        ]
    ),
)
_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**9), max_value=10**9),
    st.text(alphabet=_characters, max_size=12),
)
_json_values = st.recursive(
    _json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
_arguments = st.dictionaries(
    st.text(alphabet=_characters, min_size=1, max_size=8), _json_values, max_size=4
)


@dataclass(frozen=True)
class ToolCall:
    upstream_id: str
    name: str
    arguments: dict[str, Any]
    mode: str  # how the stream delivers it: incremental | bundled | object | name_late


@dataclass(frozen=True)
class Completion:
    reasoning: str
    reasoning_key: str
    content: str
    tool_calls: tuple[ToolCall, ...]
    finish: str | None
    usage: dict | None
    matched_stop: str | None


@st.composite
def completions(draw: st.DrawFn) -> Completion:
    calls = draw(
        st.lists(
            st.builds(
                ToolCall,
                upstream_id=st.sampled_from(
                    ["functions.Bash:0", "call abc", "chatcmpl-tool-1", "x"]
                ),
                name=st.sampled_from(TOOL_NAMES),
                arguments=_arguments,
                mode=st.sampled_from(["incremental", "bundled", "object", "name_late"]),
            ),
            max_size=3,
        )
    )
    # Upstream ids are unique within one reply.
    calls = [
        ToolCall(f"{call.upstream_id}-{n}", call.name, call.arguments, call.mode)
        for n, call in enumerate(calls)
    ]
    usage = draw(
        st.one_of(
            st.none(),
            st.builds(
                lambda prompt, completion, cached: {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "prompt_tokens_details": {"cached_tokens": min(cached, prompt)},
                },
                st.integers(0, 300_000),
                st.integers(0, 50_000),
                st.integers(0, 300_000),
            ),
        )
    )
    return Completion(
        reasoning=draw(_texts),
        reasoning_key=draw(st.sampled_from(["reasoning_content", "reasoning"])),
        content=draw(_texts),
        tool_calls=tuple(calls),
        finish=draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter", None])),
        usage=usage,
        matched_stop=draw(st.sampled_from([None, "END", "OTHER"])),
    )


def pieces(draw: st.DrawFn, text: str) -> list[str]:
    cuts = draw(st.lists(st.integers(0, max(len(text), 1)), max_size=5))
    points = sorted({c for c in cuts if 0 < c < len(text)})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if text[a:b]]


def tool_fragments(draw: st.DrawFn, index: int, call: ToolCall) -> list[dict]:
    arguments = compact_json(call.arguments)
    head = {"index": index, "id": call.upstream_id, "type": "function"}
    if call.mode == "bundled":
        return [{**head, "function": {"name": call.name, "arguments": arguments}}]
    if call.mode == "object":
        return [{**head, "function": {"name": call.name, "arguments": call.arguments}}]
    parts = [{"index": index, "function": {"arguments": p}} for p in pieces(draw, arguments)]
    if call.mode == "name_late":
        return [*parts, {**head, "function": {"name": call.name}}]
    return [{**head, "function": {"name": call.name, "arguments": ""}}, *parts]


@st.composite
def streamed(draw: st.DrawFn) -> tuple[Completion, list[dict], bool]:
    """A completion and one of the many chunk sequences an upstream may send for it."""
    completion = draw(completions())
    deltas: list[dict] = [{"role": "assistant", "content": ""}]
    deltas += [{completion.reasoning_key: p} for p in pieces(draw, completion.reasoning)]
    deltas += [{"content": p} for p in pieces(draw, completion.content)]
    per_call = [tool_fragments(draw, i, call) for i, call in enumerate(completion.tool_calls)]
    fragments: list[dict] = []
    if draw(st.booleans()):  # interleave the calls' fragments, keeping each call's order
        while any(per_call):
            for queue in per_call:
                if queue:
                    fragments.append(queue.pop(0))
    else:
        fragments = [f for queue in per_call for f in queue]
    if fragments and draw(st.booleans()):
        fragments.append({"index": 0, "id": None, "type": None, "function": {"name": None}})
    while fragments:
        size = draw(st.integers(1, 3))
        deltas.append({"tool_calls": fragments[:size]})
        fragments = fragments[size:]

    chunks = [
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d}]} for d in deltas
    ]
    final_choice = {"index": 0, "delta": {}, "finish_reason": completion.finish}
    if completion.matched_stop is not None:
        final_choice["stop_reason"] = completion.matched_stop
    placement = draw(st.sampled_from(["own_chunk", "last_chunk", "usage_chunk", "every_chunk"]))
    usage = completion.usage
    if placement == "last_chunk":
        chunks[-1]["choices"][0].update({k: v for k, v in final_choice.items() if k != "delta"})
    elif placement in ("own_chunk", "every_chunk"):
        chunks.append({"choices": [final_choice]})
    if placement == "every_chunk" and usage is not None:
        for chunk in chunks:
            chunk["usage"] = usage
    elif usage is not None or placement == "usage_chunk":
        chunks.append(
            {"choices": [final_choice] if placement == "usage_chunk" else [], "usage": usage}
        )
    done = completion.finish is None or draw(st.booleans())
    return completion, chunks, done


def as_non_streamed(completion: Completion) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": completion.content}
    if completion.reasoning:
        message[completion.reasoning_key] = completion.reasoning
    if completion.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.upstream_id,
                "type": "function",
                "function": {"name": call.name, "arguments": compact_json(call.arguments)},
            }
            for call in completion.tool_calls
        ]
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": completion.finish}
    if completion.matched_stop is not None:
        choice["stop_reason"] = completion.matched_stop
    return {"object": "chat.completion", "choices": [choice], "usage": completion.usage}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=streamed(),
    spec=st.sampled_from(SPECS),
    disable_parallel=st.booleans(),
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(0, 5000), max_size=20),
)
def test_any_stream_is_valid_and_folds_to_the_non_streamed_message(
    case: tuple[Completion, list[dict], bool],
    spec,
    disable_parallel: bool,
    newline: bytes,
    cuts: list[int],
) -> None:
    completion, chunks, done = case
    ctx = context(
        spec,
        tools=TOOL_NAMES,
        stop_sequences=["END"],
        disable_parallel=disable_parallel,
    )
    raw = render_sse(chunks, done=done, newline=newline)
    whole = run_sse_bytes([raw], ctx)
    split = run_sse_bytes(split_at(raw, cuts), ctx)

    # (2) Any chunking of the upstream bytes gives the same events.
    assert split == whole
    # (1) The stream obeys the SDK's grammar, and the SDK folds it the way we do.
    assert_valid_stream(whole)
    assert whole[-1]["type"] == "message_stop"
    message = fold_events(whole)
    snapshot = sdk_accumulate(whole)
    assert message["content"] == snapshot["content"]
    assert (message["stop_reason"], message["stop_sequence"]) == (
        snapshot["stop_reason"],
        snapshot.get("stop_sequence"),
    )
    # (b) Folding the stream equals translating the same completion non-streamed.
    expected = translate_completion(
        as_non_streamed(completion), ctx, message_id="msg_test", new_tool_id=counter_ids()
    )
    assert message == expected
    # (3) Tool ids are ours, valid, and never upstream ids.
    upstream_ids = {call.upstream_id for call in completion.tool_calls}
    for block in message["content"]:
        if block["type"] == "tool_use":
            assert ID_PATTERN.match(block["id"]) and block["id"] not in upstream_ids
            assert block["name"] in TOOL_NAMES
            assert isinstance(block["input"], dict)
    # Tool use, if any, is the last thing in the message and sets the stop reason.
    kinds = [block["type"] for block in message["content"]]
    if "tool_use" in kinds:
        assert message["stop_reason"] == "tool_use"
        assert kinds[kinds.index("tool_use") :] == ["tool_use"] * kinds.count("tool_use")
    if disable_parallel:
        assert kinds.count("tool_use") <= 1
    # Real tool calls come through with their exact arguments.
    real_calls = [(call.name, call.arguments) for call in completion.tool_calls]
    emitted = [(b["name"], b["input"]) for b in message["content"] if b["type"] == "tool_use"]
    if real_calls:
        assert emitted == (real_calls[:1] if disable_parallel else real_calls)


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=streamed(), cut=st.integers(1, 4000))
def test_a_stream_cut_off_before_finish_ends_in_an_error_not_a_fake_answer(
    case: tuple[Completion, list[dict], bool], cut: int
) -> None:
    _, chunks, _ = case
    # Drop every finish_reason and the [DONE]: the upstream died mid-reply.
    for chunk in chunks:
        for choice in chunk["choices"]:
            choice.pop("finish_reason", None)
    raw = render_sse(chunks, done=False)
    events = run_sse_bytes([raw[: min(cut, len(raw))]], context(tools=TOOL_NAMES))
    assert_valid_stream(events)
    assert events[-1] == {
        "type": "error",
        "error": {"type": "api_error", "message": "upstream stream truncated"},
    }


def test_generated_sse_is_parseable_upstream_json() -> None:
    """Guard for the generator itself: every data line is JSON or [DONE]."""
    raw = render_sse([{"choices": []}], done=True)
    lines = [line for line in raw.split(b"\n") if line.startswith(b"data: ")]
    assert orjson.loads(lines[0][6:]) == {"choices": []}
    assert lines[-1] == b"data: [DONE]"
