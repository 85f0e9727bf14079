"""Reasoning inlined in content is split out, whatever the chunk boundaries (docs/wire.md,
"The stream state machine": think tags)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cc_nemo.translate.think import Segment, ThinkTagSplitter


def split_all(pieces: list[str], *, starts_in_think: bool = False) -> list[Segment]:
    splitter = ThinkTagSplitter(starts_in_think=starts_in_think)
    segments: list[Segment] = []
    for piece in pieces:
        segments += splitter.feed(piece)
    segments += splitter.flush()
    merged: list[Segment] = []
    for kind, text in segments:
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + text)
        else:
            merged.append((kind, text))
    return merged


@pytest.mark.parametrize(
    ("content", "starts_in_think", "expected"),
    [
        ("<think>plan</think>answer", False, [("thinking", "plan"), ("text", "answer")]),
        ("\n <think>plan</think>\n\nanswer", False, [("thinking", "plan"), ("text", "\n\nanswer")]),
        (
            "<|channel>thought\nplan<channel|>answer",
            False,
            [("thinking", "\nplan"), ("text", "answer")],
        ),
        ("plan</think>answer", True, [("thinking", "plan"), ("text", "answer")]),
        ("<think>plan</think>answer", True, [("thinking", "plan"), ("text", "answer")]),
        ("no tags at all", False, [("text", "no tags at all")]),
        ("no close tag", True, [("thinking", "no close tag")]),
        ("<think>unterminated", False, [("thinking", "unterminated")]),
        ("talk about <think> tags", False, [("text", "talk about <think> tags")]),
        ("<thin", False, [("text", "<thin")]),
        ("<think></think>", False, []),
        ("<think>a</think>b</think>c", False, [("thinking", "a"), ("text", "b</think>c")]),
    ],
)
def test_think_tags_are_split_into_thinking_and_text(
    content: str, starts_in_think: bool, expected: list[Segment]
) -> None:
    assert split_all([content], starts_in_think=starts_in_think) == expected


def test_only_a_possible_partial_tag_is_held_back() -> None:
    splitter = ThinkTagSplitter()
    assert splitter.feed("<think>abc</th") == [("thinking", "abc")]
    assert splitter.feed("ink>ok") == [("text", "ok")]


def test_text_without_tags_streams_without_delay() -> None:
    splitter = ThinkTagSplitter()
    assert splitter.feed("Hello") == [("text", "Hello")]


@settings(max_examples=200, deadline=None)
@given(
    thinking=st.text(alphabet="ab <>/thinkc\n", max_size=20).filter(lambda t: "</think>" not in t),
    answer=st.text(alphabet="ab <>/thinkc\n", max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=8),
    starts_in_think=st.booleans(),
)
def test_split_is_the_same_for_any_chunking(
    thinking: str, answer: str, cuts: list[int], starts_in_think: bool
) -> None:
    content = ("" if starts_in_think else "<think>") + thinking + "</think>" + answer
    points = sorted({c for c in cuts if 0 < c < len(content)})
    pieces = [content[a:b] for a, b in zip([0, *points], [*points, len(content)], strict=True)]
    assert split_all(pieces, starts_in_think=starts_in_think) == split_all(
        [content], starts_in_think=starts_in_think
    )
