"""SSE decoding survives any read boundary; encoding uses Anthropic's framing (docs/wire.md, "The stream state machine")."""

from __future__ import annotations

import itertools
import time

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cc_nemo.translate import SSEDecoder, SSEMessage, encode_event
from cc_nemo.translate.sse import MAX_EVENT_CHARS, SSELineTooLong, encode_message

from .support import split_at


def decode_all(pieces: list[bytes]) -> list[SSEMessage]:
    decoder = SSEDecoder()
    messages: list[SSEMessage] = []
    for piece in pieces:
        messages += decoder.feed(piece)
    return messages + decoder.flush()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"data: a\n\n", [SSEMessage(None, "a")]),
        (b"data: a\r\n\r\n", [SSEMessage(None, "a")]),
        (b"data: a\r\rdata: b\r\r", [SSEMessage(None, "a"), SSEMessage(None, "b")]),
        (b"event: ping\ndata: {}\n\n", [SSEMessage("ping", "{}")]),
        (b": keep-alive comment\n\ndata: x\n\n", [SSEMessage(None, "x")]),
        (b"data: line1\ndata: line2\n\n", [SSEMessage(None, "line1\nline2")]),
        (b"data:no-space\n\n", [SSEMessage(None, "no-space")]),
        (b"data:  two spaces\n\n", [SSEMessage(None, " two spaces")]),
        (b"id: 7\nretry: 100\ndata: x\n\n", [SSEMessage(None, "x")]),
        (b"event: only-a-name\n\n", []),
        (b"\xef\xbb\xbfdata: bom\n\n", [SSEMessage(None, "bom")]),
        (b"data: [DONE]\n\n", [SSEMessage(None, "[DONE]")]),
    ],
)
def test_decoder_parses_sse_fields_and_line_endings(raw: bytes, expected: list[SSEMessage]) -> None:
    assert decode_all([raw]) == expected


def test_decoder_flush_emits_a_final_message_without_blank_line() -> None:
    assert decode_all([b"data: tail"]) == [SSEMessage(None, "tail")]


def test_decoder_keeps_unicode_line_separators_inside_data() -> None:
    payload = '{"t":"a\u2028b\u0085c"}'
    assert decode_all([f"data: {payload}\n\n".encode()]) == [SSEMessage(None, payload)]


def test_decoder_joins_a_utf8_character_split_across_reads() -> None:
    raw = 'data: {"t":"héllo 🌍"}\n\n'.encode()
    split = raw.index("🌍".encode()) + 2
    assert decode_all([raw[:split], raw[split:]]) == [SSEMessage(None, '{"t":"héllo 🌍"}')]


def test_decoder_treats_crlf_split_between_reads_as_one_line_end() -> None:
    assert decode_all([b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"]) == [
        SSEMessage(None, "a"),
        SSEMessage(None, "b"),
    ]


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=6),
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_decoder_gives_the_same_messages_for_any_byte_split(
    payloads: list[str], newline: bytes, cuts: list[int]
) -> None:
    raw = b"".join(
        b"data: " + orjson.dumps({"t": p}) + newline + b": comment" + newline + newline
        for p in payloads
    )
    expected = [SSEMessage(None, orjson.dumps({"t": p}).decode()) for p in payloads]
    assert decode_all(split_at(raw, cuts)) == expected
    assert decode_all([raw[i : i + 1] for i in range(len(raw))]) == expected


def test_encode_event_has_event_line_and_compact_json_data() -> None:
    event = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "é\n"},
    }
    encoded = encode_event(event)
    assert encoded.startswith(b"event: content_block_delta\ndata: {")
    assert encoded.endswith(b"\n\n")
    assert encoded.count(b"\n") == 3
    assert decode_all([encoded]) == [
        SSEMessage("content_block_delta", orjson.dumps(event).decode())
    ]


def test_crlf_split_between_two_data_lines_does_not_end_the_event() -> None:
    assert decode_all([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [SSEMessage(None, "a\nb")]


def test_a_four_megabyte_line_in_small_reads_decodes_in_linear_time() -> None:
    # The pending line was re-joined and re-split on every read: quadratic, seconds per event.
    payload = "x" * (4 * 1024 * 1024)
    raw = f"data: {payload}\n\n".encode()
    started = time.perf_counter()
    messages = decode_all([raw[i : i + 4096] for i in range(0, len(raw), 4096)])
    elapsed = time.perf_counter() - started
    assert messages == [SSEMessage(None, payload)]
    assert elapsed < 0.5, f"decoding took {elapsed:.2f} s"


def test_a_line_that_never_ends_is_refused_past_the_cap() -> None:
    decoder = SSEDecoder()
    piece = b"x" * (1024 * 1024)
    with pytest.raises(SSELineTooLong):
        for _ in range(MAX_EVENT_CHARS // len(piece) + 2):
            decoder.feed(piece)


@pytest.mark.parametrize(
    "pieces",
    [
        [b"data: " + b"y" * 200 + b"\n"],  # one long line in one read
        [b"data: ", b"y" * 100, b"y" * 100],  # a long unfinished line across reads
        [b"data: " + b"y" * 60 + b"\n", b"data: " + b"y" * 60 + b"\n"],  # long event, short lines
    ],
)
def test_the_cap_covers_lines_and_whole_events(pieces: list[bytes]) -> None:
    decoder = SSEDecoder(max_event_chars=100)
    with pytest.raises(SSELineTooLong):
        for piece in pieces:
            decoder.feed(piece)
        decoder.flush()


def test_events_up_to_the_cap_pass() -> None:
    decoder = SSEDecoder(max_event_chars=100)
    messages = decoder.feed(b"data: " + b"z" * 90 + b"\n\n")
    messages += decoder.feed(b"data: " + b"z" * 90 + b"\n\n")
    assert messages == [SSEMessage(None, "z" * 90)] * 2


def test_a_cr_ended_event_is_dispatched_by_the_read_that_ends_it() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == [SSEMessage(None, "a")]
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [SSEMessage(None, "b")]


_LINES = st.lists(
    st.one_of(
        st.text(alphabet="ab: \u2028é🌍", max_size=8).map(lambda t: "data:" + t),
        st.text(alphabet="ab é", max_size=5).map(lambda t: "event: " + t),
        st.just(""),
        st.just(": comment"),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    lines=_LINES,
    endings=st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=1),
    bom=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_any_split_of_any_stream_decodes_as_the_whole(
    lines: list[str], endings: list[str], bom: bool, cuts: list[int]
) -> None:
    text = "".join(line + endings[i % len(endings)] for i, line in enumerate(lines))
    raw = ("\ufeff" if bom else "").encode() + text.encode()
    whole = decode_all([raw])
    assert decode_all(split_at(raw, cuts)) == whole
    assert decode_all([raw[i : i + 1] for i in range(len(raw))]) == whole


@settings(max_examples=200, deadline=None)
@given(
    event=st.one_of(st.none(), st.text(alphabet="abc_", min_size=1, max_size=8)),
    data=st.text(alphabet="ab\n {}:é", max_size=30),
)
def test_a_decoded_message_encodes_back_to_itself(event: str | None, data: str) -> None:
    message = SSEMessage(event, data)
    assert decode_all([encode_message(message)]) == [message]


# Events for the fast path (whole `data: …` events, LF only) mixed with every form that must
# leave it: comments, other fields, CR and CRLF, multi-line data, extra blank lines, a BOM, a
# field without a colon, invalid UTF-8, and an event cut by the read boundary.
_PAYLOAD = st.text(alphabet='ab :{}"é🌍\u2028\u0085', max_size=12)
_FAST_EVENT = _PAYLOAD.map(lambda p: ("data: " + p + "\n\n").encode())
_OTHER_EVENT = st.one_of(
    _PAYLOAD.map(lambda p: ("data:" + p + "\n\n").encode()),
    _PAYLOAD.map(lambda p: ("data:  " + p + "\n\n").encode()),
    _PAYLOAD.map(lambda p: (": " + p + "\n\ndata: " + p + "\n\n").encode()),
    _PAYLOAD.map(lambda p: ("event: e\ndata: " + p + "\n\n").encode()),
    _PAYLOAD.map(lambda p: ("id: 1\ndata: " + p + "\n\n").encode()),
    _PAYLOAD.map(lambda p: ("data: " + p + "\r\n\r\n").encode()),
    _PAYLOAD.map(lambda p: ("data: " + p + "\r\r").encode()),
    _PAYLOAD.map(lambda p: ("data: " + p + "\ndata: " + p + "\n\n").encode()),
    _PAYLOAD.map(lambda p: ("data: " + p + "\n\n\n").encode()),
    _PAYLOAD.map(lambda p: ("data\n\ndata: " + p + "\n\n").encode()),
    _PAYLOAD.map(lambda p: ("dataset: " + p + "\n\n").encode()),
    _PAYLOAD.map(lambda p: b"data: \xff\xc3" + p.encode() + b"\xe2\x82\n\n"),
    _PAYLOAD.map(lambda p: ("\n\ndata: " + p + "\n\n").encode()),
    st.just(b"event: only-a-name\n\n"),
    st.just(b"\n"),
)


def decode_byte_by_byte(raw: bytes) -> list[SSEMessage]:
    # A one-byte read never ends in a blank line: the general parser alone reads it all.
    return decode_all([raw[i : i + 1] for i in range(len(raw))])


@settings(max_examples=400, deadline=None)
@given(
    events=st.lists(
        st.one_of(_FAST_EVENT, _FAST_EVENT, _FAST_EVENT, _OTHER_EVENT), min_size=1, max_size=10
    ),
    bom=st.booleans(),
    reads=st.lists(st.integers(min_value=1, max_value=4), max_size=10),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=3),
    tail=st.sampled_from([b"", b"data: tail", b"data: x\n", b"data: y\r", b":c"]),
)
def test_reads_of_whole_events_decode_as_the_general_parser_does(
    events: list[bytes], bom: bool, reads: list[int], cuts: list[int], tail: bytes
) -> None:
    # Reads mostly on event boundaries (as the mock and real servers send them), a few not.
    bounds: list[int] = []
    position = 0
    for event, take in zip(events, itertools.cycle(reads or [1])):
        position += len(event)
        if take != 2:
            bounds.append(position)
    raw = (b"\xef\xbb\xbf" if bom else b"") + b"".join(events) + tail
    shift = 3 if bom else 0
    pieces = split_at(raw, [b + shift for b in bounds] + cuts)
    expected = decode_byte_by_byte(raw)
    assert decode_all(pieces) == expected
    assert decode_all([raw]) == expected


@settings(max_examples=100, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=80, max_value=120), min_size=1, max_size=4),
    whole=st.booleans(),
)
def test_the_cap_holds_for_reads_of_whole_events(sizes: list[int], whole: bool) -> None:
    events = [b"data: " + b"w" * size + b"\n\n" for size in sizes]
    pieces = [b"".join(events)] if whole else events

    def outcome(pieces: list[bytes]) -> list[SSEMessage] | str:
        decoder = SSEDecoder(max_event_chars=100)
        messages: list[SSEMessage] = []
        try:
            for piece in pieces:
                messages += decoder.feed(piece)
        except SSELineTooLong:
            return "too long"
        return messages + decoder.flush()

    # An event's data over the cap is refused, whether its read holds one event or several.
    assert outcome(pieces) == (
        "too long" if max(sizes) >= 100 else [SSEMessage(None, "w" * size) for size in sizes]
    )


@pytest.mark.parametrize(
    "name",
    [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
        "a_type_passed_through",
        "é",
        7,
        ["odd"],
    ],
)
def test_every_event_type_is_framed_the_same(name: object) -> None:
    event = {"type": name, "index": 1, "delta": {"text": "é"}}
    assert encode_event(event) == (
        b"event: " + str(name).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
    )
