"""Server-sent events: decode upstream bytes split anywhere, encode our events in Anthropic's framing."""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

# SSE allows CRLF, LF and CR line endings; str.splitlines would also split on U+2028 etc.,
# which JSON carries raw inside strings.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SSEMessage:
    """One dispatched event: its `event:` name (None when absent) and its joined `data:` lines."""

    event: str | None
    data: str


class SSEDecoder:
    """Turns bytes in arbitrary pieces (even mid UTF-8 character or mid CRLF) into SSE messages."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._event: str | None = None
        self._data: list[str] = []
        self._at_stream_start = True

    def feed(self, data: bytes) -> list[SSEMessage]:
        """Consume one network read; return the messages it completed."""
        text = self._utf8.decode(data)
        if not text:
            return []
        return self._consume(text, final=False)

    def flush(self) -> list[SSEMessage]:
        """At EOF: treat any unterminated line and undispatched data as a final message."""
        text = self._utf8.decode(b"", final=True)
        messages = self._consume(text, final=True)
        if self._pending:
            self._process_line(self._pending, messages)
            self._pending = ""
        self._dispatch(messages)
        return messages

    def _consume(self, text: str, *, final: bool) -> list[SSEMessage]:
        buffer = self._pending + text
        if self._at_stream_start and buffer:
            buffer = buffer.removeprefix("\ufeff")
            self._at_stream_start = False
        # A trailing CR may be the first half of a CRLF that the next read completes.
        hold_cr = not final and buffer.endswith("\r")
        if hold_cr:
            buffer = buffer[:-1]
        lines = _LINE_BREAK.split(buffer)
        self._pending = lines.pop() + ("\r" if hold_cr else "")
        messages: list[SSEMessage] = []
        for line in lines:
            self._process_line(line, messages)
        return messages

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
            self._data.append(value)
        elif field == "event":
            self._event = value

    def _dispatch(self, messages: list[SSEMessage]) -> None:
        if self._data:
            messages.append(SSEMessage(self._event or None, "\n".join(self._data)))
        self._event = None
        self._data = []


def encode_event(event: Mapping) -> bytes:
    """Anthropic framing: an `event:` line naming the type (Claude Code needs it) and one data line."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
