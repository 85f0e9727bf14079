"""Incremental splitter for reasoning inlined in `content` (docs/wire.md, "The stream state
machine": think tags).

Handles `<think>…</think>` (Qwen, QwQ), the R1-distill form that starts inside the think
block and only closes it with `</think>`, and Gemma 4's `<|channel>thought … <channel|>`.
An opening tag only counts at the start of the reply (after whitespace), so an answer that
merely talks about `<think>` tags is left alone. Only a possible partial tag is held back.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

SegmentKind = Literal["thinking", "text"]
Segment = tuple[SegmentKind, str]

_R1_OPEN = "<think>"
_R1_CLOSE = "</think>"
_PAIRS = {_R1_OPEN: _R1_CLOSE, "<|channel>thought": "<channel|>"}


class _State(Enum):
    BEFORE_ANY = "before_any"  # nothing but whitespace yet: an opening tag may still come
    OPENING_THINK = "opening_think"  # starts_in_think: an explicit "<think>" may still come
    IN_THINK = "in_think"
    TEXT = "text"  # past the reasoning: everything is answer text


class ThinkTagSplitter:
    """Feed content fragments; get (kind, text) segments with tags removed."""

    def __init__(self, *, starts_in_think: bool = False) -> None:
        self._buffer = ""
        self._close_tag = _R1_CLOSE
        self._state = _State.OPENING_THINK if starts_in_think else _State.BEFORE_ANY
        # Past the reasoning (the TEXT state, where nothing is ever held): `feed` would return
        # its text whole, so a caller may skip it. Read for every content fragment.
        self.in_text = False

    def feed(self, text: str) -> list[Segment]:
        """Split one fragment; a partial tag at its end waits for the next fragment."""
        if not text:
            return []
        self._buffer += text
        segments: list[Segment] = []
        while self._buffer and self._step(segments):
            pass
        return _merge(segments)

    def flush(self) -> list[Segment]:
        """End of content: whatever was held is emitted as the kind it would have been."""
        buffer, self._buffer = self._buffer, ""
        if not buffer:
            return []
        kind: SegmentKind = (
            "thinking"
            if self._state
            in (
                _State.IN_THINK,
                _State.OPENING_THINK,
            )
            else "text"
        )
        return [(kind, buffer)]

    def _step(self, segments: list[Segment]) -> bool:
        """Advance once; False means the rest of the buffer must wait for more input."""
        if self._state is _State.TEXT:
            segments.append(("text", self._buffer))
            self._buffer = ""
            return False
        if self._state is _State.IN_THINK:
            return self._step_in_think(segments)
        stripped = self._buffer.lstrip()
        if not stripped:
            return False
        candidates = _PAIRS if self._state is _State.BEFORE_ANY else {_R1_OPEN: _R1_CLOSE}
        for open_tag, close_tag in candidates.items():
            if stripped.startswith(open_tag):
                self._buffer = stripped[len(open_tag) :]
                self._close_tag = close_tag
                self._state = _State.IN_THINK
                return True
            if open_tag.startswith(stripped):
                return False
        if self._state is _State.OPENING_THINK:
            self._state = _State.IN_THINK
        else:
            self._enter_text()
        return True

    def _enter_text(self) -> None:
        self._state = _State.TEXT
        self.in_text = True

    def _step_in_think(self, segments: list[Segment]) -> bool:
        position = self._buffer.find(self._close_tag)
        if position >= 0:
            if position:
                segments.append(("thinking", self._buffer[:position]))
            self._buffer = self._buffer[position + len(self._close_tag) :]
            self._enter_text()
            return True
        keep = _partial_suffix(self._buffer, self._close_tag)
        emit = self._buffer[: len(self._buffer) - keep]
        if emit:
            segments.append(("thinking", emit))
        self._buffer = self._buffer[len(self._buffer) - keep :]
        return False


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that could be the start of `tag`."""
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:length]):
            return length
    return 0


def _merge(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for kind, text in segments:
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + text)
        else:
            merged.append((kind, text))
    return merged
