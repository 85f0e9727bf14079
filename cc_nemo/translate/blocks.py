"""Content blocks of one streamed Anthropic message: numbering, thinking, text and tool_use
deltas (docs/wire.md, "The stream state machine": block invariants).

State: the kind of the open block, if any (one at a time). Opening a block closes the open
one; closing a thinking block first sends its synthetic signature.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from cc_nemo.translate.json_repair import compact_json

BlockKind = Literal["thinking", "text"]
_OpenKind = Literal["thinking", "text", "tool_use"]


def synthetic_signature(thinking: str) -> str:
    """A visibly fake signature: Claude Code echoes it back and nothing here verifies it."""
    return "ccp1." + hashlib.sha256(thinking.encode("utf-8")).hexdigest()[:16]


class BlockWriter:
    """Appends content_block_* events that keep the SDK's invariants: indices in start order,
    deltas only into the open block, nothing empty, a signature before a thinking block stops."""

    def __init__(self, *, prefill: str) -> None:
        self._next_index = 0
        self._open: _OpenKind | None = None
        self._open_thinking: list[str] = []
        self._closed_thinking: list[str] = []
        # The prefill the request removed: it starts the first text block, whenever that opens.
        self._prefill = prefill
        self.text_emitted = False
        # Characters sent, for the output-token estimate when upstream reports no usage.
        self.chars_out = 0

    def thinking(self, text: str, events: list[dict]) -> None:
        if self._open != "thinking":
            text = text.lstrip()
            if not text:
                return
            self.close(events)
            self._start("thinking", events)
        self._open_thinking.append(text)
        self.chars_out += len(text)
        self._delta({"type": "thinking_delta", "thinking": text}, events)

    def text(self, text: str, events: list[dict]) -> None:
        if self._open != "text":
            text = text.lstrip()
            if not text:
                return
            if self._prefill:
                text, self._prefill = self._prefill + text, ""
            self.close(events)
            self._start("text", events)
            self.text_emitted = True
        self.chars_out += len(text)
        # Inlined `_delta`: this runs for every text fragment.
        events.append(
            {
                "type": "content_block_delta",
                "index": self._next_index,
                "delta": {"type": "text_delta", "text": text},
            }
        )

    def reasoning_as_text(self, events: list[dict]) -> None:
        """Repeat all thinking so far as text: for models that answer only in reasoning
        (Nemotron), which would otherwise leave the user an empty reply."""
        thinking = "\n\n".join([*self._closed_thinking, "".join(self._open_thinking)]).strip()
        if thinking:
            self.text(thinking, events)

    def close_with_prefill(self, events: list[dict]) -> None:
        """Close the open block; a prefill no text consumed still gets a text block of its own,
        since the client expects its reply to continue the prefill."""
        if self._prefill and not self.text_emitted:
            self.close(events)
            self._start("text", events)
            # Not counted in chars_out: the model never wrote it.
            self._delta({"type": "text_delta", "text": self._prefill}, events)
            self.text_emitted = True
            self._prefill = ""
        self.close(events)

    def tool_use(
        self, tool_id: str, name: str, arguments: dict[str, Any], events: list[dict]
    ) -> None:
        """A whole tool_use block: start, the complete input as one delta, stop."""
        self.open_tool(tool_id, name, events)
        self.tool_json(compact_json(arguments), events)
        self.close(events)

    def open_tool(self, tool_id: str, name: str, events: list[dict]) -> None:
        """Start a tool_use block whose input follows as `tool_json` pieces. What came before
        closes first, and a prefill nothing consumed gets its text block before it."""
        self.close_with_prefill(events)
        events.append(
            {
                "type": "content_block_start",
                "index": self._next_index,
                "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}},
            }
        )
        self._open = "tool_use"

    def tool_json(self, partial_json: str, events: list[dict]) -> None:
        """A piece of the open tool_use block's input; nothing for an empty piece."""
        if partial_json:
            self.chars_out += len(partial_json)
            self._delta({"type": "input_json_delta", "partial_json": partial_json}, events)

    def close(self, events: list[dict]) -> None:
        if self._open is None:
            return
        if self._open == "thinking":
            thinking = "".join(self._open_thinking)
            self._closed_thinking.append(thinking)
            self._open_thinking = []
            self._delta(
                {"type": "signature_delta", "signature": synthetic_signature(thinking)}, events
            )
        events.append({"type": "content_block_stop", "index": self._next_index})
        self._next_index += 1
        self._open = None

    def _start(self, kind: BlockKind, events: list[dict]) -> None:
        block: dict[str, Any] = (
            {"type": "thinking", "thinking": "", "signature": ""}
            if kind == "thinking"
            else {"type": "text", "text": ""}
        )
        events.append(
            {"type": "content_block_start", "index": self._next_index, "content_block": block}
        )
        self._open = kind

    def _delta(self, delta: dict, events: list[dict]) -> None:
        events.append({"type": "content_block_delta", "index": self._next_index, "delta": delta})
