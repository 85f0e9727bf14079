"""Server-sent events: decode upstream bytes split anywhere, encode our events in Anthropic's framing."""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from functools import partial
from typing import NamedTuple

import orjson

# SSE allows CRLF, LF and CR line endings; str.splitlines would also split on U+2028 etc.,
# which JSON carries raw inside strings.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

# The longest line, and the most `data:` one event may gather, in decoded characters. Far
# beyond any real event (a whole tool input is one line), yet an upstream that never sends a
# line break cannot grow our memory without end.
MAX_EVENT_CHARS = 16 * 1024 * 1024


class SSELineTooLong(ValueError):
    """An upstream line, or one event's data, exceeded MAX_EVENT_CHARS; answer an api_error."""


class SSEMessage(NamedTuple):
    """One dispatched event: its `event:` name (None when absent) and its joined `data:` lines.

    A NamedTuple rather than a frozen dataclass: one is made per upstream chunk, and building
    a frozen dataclass costs ~3x as much."""

    event: str | None
    data: str


# SSEMessage(event, data) without the Python-level __new__ a NamedTuple defines: ~0.3 us less
# per message, i.e. per upstream chunk.
_message = partial(tuple.__new__, SSEMessage)


class SSEDecoder:
    """Turns bytes in arbitrary pieces (even mid UTF-8 character or mid CRLF) into SSE messages.

    Work is linear in the bytes fed: an unfinished line is kept as a list of pieces and joined
    once its end arrives, never re-scanned. `feed` and `flush` raise SSELineTooLong when a
    line or an event's data outgrows MAX_EVENT_CHARS; the decoder is unusable after that, and
    the caller should answer (or end the stream with) a 500 api_error."""

    def __init__(self, max_event_chars: int = MAX_EVENT_CHARS) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._max = max_event_chars
        self._pending: list[str] = []
        self._pending_chars = 0
        # The last piece ended with CR: an LF starting the next one completes that CRLF.
        self._skip_lf = False
        self._event: str | None = None
        self._data: list[str] = []
        self._data_chars = 0
        self._at_stream_start = True
        # Nothing is pending, so a read of whole events may take the fast path.
        self._between_events = True

    def feed(self, data: bytes) -> list[SSEMessage]:
        """Consume one network read; return the messages it completed."""
        if self._between_events and data.endswith(b"\n\n") and b"\r" not in data:
            # Ends in ASCII: the UTF-8 decoder holds nothing before or after this read.
            text = data.decode("utf-8", "replace")
            messages = self._whole_data_events(text)
            if messages is not None:
                return messages
        else:
            # A read ending in a blank line leaves nothing pending: no partial line, UTF-8
            # character, CR, field or data (the empty line dispatched them).
            self._between_events = data.endswith(b"\n\n")
            text = self._utf8.decode(data)
            if not text:
                return []
        return self._consume(text)

    def flush(self) -> list[SSEMessage]:
        """At EOF: treat any unterminated line and undispatched data as a final message."""
        messages = self._consume(self._utf8.decode(b"", final=True))
        if self._pending:
            self._process_line(self._take_pending(""), messages)
        self._dispatch(messages)
        return messages

    def _whole_data_events(self, text: str) -> list[SSEMessage] | None:
        """The fast path, for the usual read (whole `data: …` events, one line each, LF only):
        one split on the blank lines instead of a line at a time. None when the read holds
        anything else (a comment, another field, a multi-line event, a BOM at the start); the
        general parser then reads it from the same state."""
        if len(text) >= self._max:
            return None  # the general parser decides which line or event is over the cap
        parts = text.split("\n\n")
        # The read ends with a blank line, so the last part is "", or "\n" when it ends with
        # three: one more empty line, which dispatches nothing.
        parts.pop()
        messages = []
        for part in parts:
            if part[:5] != "data:" or "\n" in part:
                return None
            messages.append(_message((None, part[6:] if part[5:6] == " " else part[5:])))
        self._at_stream_start = False  # a BOM would have failed the "data:" check
        return messages

    def _consume(self, text: str) -> list[SSEMessage]:
        messages: list[SSEMessage] = []
        if not text:
            return messages
        if self._at_stream_start:
            text = text.removeprefix("\ufeff")
            self._at_stream_start = False
        position = 0
        if self._skip_lf and text.startswith("\n"):
            position = 1
        for match in _LINE_BREAK.finditer(text, position):
            self._process_line(self._take_pending(text[position : match.start()]), messages)
            position = match.end()
        self._skip_lf = text.endswith("\r")
        if position < len(text):
            self._pending.append(text[position:])
            self._pending_chars += len(text) - position
            if self._pending_chars > self._max:
                raise SSELineTooLong(f"an upstream event line is over {self._max} characters")
        return messages

    def _take_pending(self, tail: str) -> str:
        if not self._pending:
            return tail
        self._pending.append(tail)
        line = "".join(self._pending)
        self._pending = []
        self._pending_chars = 0
        return line

    def _process_line(self, line: str, messages: list[SSEMessage]) -> None:
        if not line:
            self._dispatch(messages)
            return
        if line.startswith(":"):
            return
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data_chars += len(value) + 1
            if self._data_chars > self._max:
                raise SSELineTooLong(f"an upstream event's data is over {self._max} characters")
            self._data.append(value)
        elif field == "event":
            self._event = value

    def _dispatch(self, messages: list[SSEMessage]) -> None:
        if self._data:
            messages.append(_message((self._event or None, "\n".join(self._data))))
        self._event = None
        self._data = []
        self._data_chars = 0


# The framing before the JSON of each event type we send, encoded once: encode_event runs for
# every event of every stream.
_EVENT_HEADS = {
    name: b"event: " + name.encode() + b"\ndata: "
    for name in (
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    )
}


def encode_event(event: Mapping) -> bytes:
    """Anthropic framing: an `event:` line naming the type (Claude Code needs it) and one data line."""
    name = event["type"]
    head = _EVENT_HEADS.get(name) if type(name) is str else None
    if head is None:
        head = b"event: " + str(name).encode() + b"\ndata: "
    return b"".join((head, orjson.dumps(event), b"\n\n"))


def encode_message(message: SSEMessage) -> bytes:
    """A decoded message framed again as it came: its `event:` line if it had one, and each
    line of its data as a `data:` line of its own (a raw newline would end the field early)."""
    name = b"event: " + message.event.encode() + b"\n" if message.event else b""
    lines = b"".join(b"data: " + line.encode() + b"\n" for line in message.data.split("\n"))
    return name + lines + b"\n"
