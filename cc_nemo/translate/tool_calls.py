"""Tool calls of a streamed reply: assembled from upstream fragments, and salvaged from JSON
text a model wrote instead of calling (docs/wire.md, "The stream state machine": "Tool calls
are buffered" and "Leaked JSON tool-call salvage").

Both only collect while the stream runs; the calls come out whole at the end, because a name
can arrive after its arguments, fragments of several calls can interleave and arguments may
need repair.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cc_nemo.translate.json_repair import compact_json, parse_arguments, repair_json

# (original tool name, input)
ToolCall = tuple[str, dict[str, Any]]

_FENCE = "```"


@dataclass
class _ToolBuffer:
    upstream_id: str | None = None
    name: str = ""
    argument_parts: list[str] = field(default_factory=list)


class ToolCallAssembler:
    """Buffers `delta.tool_calls[]` fragments into whole calls, in first-seen order."""

    def __init__(self, tool_name_map: Mapping[str, str]) -> None:
        self._tool_name_map = tool_name_map
        self._buffers: list[_ToolBuffer] = []
        # The call each upstream index currently feeds; a reused index moves to a new call.
        self._by_index: dict[int, _ToolBuffer] = {}
        self._last_index: int | None = None

    def add(self, fragment: object) -> bool:
        """Buffer one fragment; False when it carried nothing (Cloudflare's null finaliser)."""
        if not isinstance(fragment, Mapping):
            return False
        function = fragment.get("function")
        if not isinstance(function, Mapping):
            function = {}
        call_id = _non_empty_str(fragment.get("id"))
        name = _non_empty_str(function.get("name"))
        arguments = function.get("arguments")
        has_arguments = isinstance(arguments, dict | list) or (
            isinstance(arguments, str) and arguments != ""
        )
        if call_id is None and name is None and not has_arguments:
            return False
        index = fragment.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = self._last_index if self._last_index is not None else 0
        self._last_index = index
        buffer = self._by_index.get(index)
        if buffer is not None and buffer.name and _starts_new_call(buffer, call_id, name):
            buffer = None  # some servers reuse one index for several calls
        if buffer is None:
            buffer = _ToolBuffer()
            self._buffers.append(buffer)
            self._by_index[index] = buffer
        if call_id and not buffer.upstream_id:
            buffer.upstream_id = call_id
        if name and not buffer.name:
            buffer.name = name
        if isinstance(arguments, str):
            buffer.argument_parts.append(arguments)
        elif isinstance(arguments, dict | list):
            buffer.argument_parts = [compact_json(arguments)]
        return True

    def calls(self, *, cut_off: bool) -> list[ToolCall]:
        """The named calls with parsed (or repaired) arguments; after a `length` finish, calls
        whose arguments are past repair are dropped: running them would do the wrong thing."""
        calls: list[ToolCall] = []
        for buffer in self._buffers:
            if not buffer.name:
                continue  # a call without a name cannot be answered
            arguments, usable = parse_arguments("".join(buffer.argument_parts))
            if not usable and cut_off:
                continue
            calls.append((self._tool_name_map.get(buffer.name, buffer.name), arguments))
        return calls


# released: text goes straight out.
# undecided: held, too little yet to tell whether it starts like JSON.
# looks_like_json: held until the end, to be parsed as tool calls.
# (Strings, not an Enum: on Python 3.11 each Enum member lookup costs ~100 ns, and the state is
# checked for every text fragment.)
_HoldState = Literal["released", "undecided", "looks_like_json"]


class LeakedCallSalvage:
    """gpt-oss may answer a tool call as JSON text: text that looks like JSON is held until the
    end so it can become tool_use instead; anything else is released as text at once."""

    def __init__(
        self, *, enabled: bool, tool_name_map: Mapping[str, str], offered_tools: Collection[str]
    ) -> None:
        self._tool_name_map = tool_name_map
        self._offered_tools = offered_tools
        self._state: _HoldState = "undecided" if enabled else "released"
        # `_state != "released"` as a plain attribute, not a property: read for every fragment.
        self.holding = enabled
        self._held: list[str] = []

    def hold(self, text: str) -> str:
        """Take a text fragment while holding; returns the text that may go out now."""
        self._held.append(text)
        if self._state == "looks_like_json":
            return ""  # decided: re-joining the held text per fragment would be quadratic
        held = "".join(self._held)
        head = held.lstrip()
        if not _may_be_leaked_call(head):
            return self.release()
        if len(head) >= len(_FENCE):
            # Three non-space characters settle whether held text can be a JSON tool call.
            self._state = "looks_like_json"
        return ""

    def release(self) -> str:
        """Stop holding (the text is not a call, or real tool calls came); returns the held text."""
        held = "".join(self._held)
        self._held = []
        self._state = "released"
        self.holding = False
        return held

    def settle(self, calls: list[ToolCall]) -> tuple[list[ToolCall], str]:
        """End of stream: the held text becomes the calls if it is a leaked call and no real
        call came; otherwise it is returned to go out as text."""
        if not self._held:
            return calls, ""
        held = self.release()
        salvaged = None if calls else self._parse(held)
        if salvaged:
            return salvaged, ""
        return calls, held

    def _parse(self, text: str) -> list[ToolCall] | None:
        """Tool calls a model wrote as JSON text, if every one names an offered tool: salvage
        never invents a call to a tool that was not offered."""
        parsed = repair_json(text.strip())
        items = parsed if isinstance(parsed, list) else [parsed]
        calls: list[ToolCall] = []
        for item in items:
            if not isinstance(item, Mapping):
                return None
            if isinstance(item.get("function"), Mapping):
                item = item["function"]
            name = item.get("name")
            if not isinstance(name, str):
                return None
            original = self._tool_name_map.get(name, name)
            if original not in self._offered_tools:
                return None
            if "arguments" in item:
                raw = item["arguments"]
            elif "parameters" in item:
                raw = item["parameters"]
            else:
                raw = {k: v for k, v in item.items() if k not in ("name", "type", "id")}
            arguments, usable = parse_arguments(raw)
            if not usable:
                return None
            calls.append((original, arguments))
        return calls or None


def _may_be_leaked_call(text: str) -> bool:
    """Whether held text could still turn out to be a JSON tool call (possibly fenced)."""
    if not text:
        return True
    return text[0] in "{[" or text.startswith(_FENCE) or _FENCE.startswith(text)


def _starts_new_call(buffer: _ToolBuffer, call_id: str | None, name: str | None) -> bool:
    if call_id is not None and buffer.upstream_id is not None:
        return call_id != buffer.upstream_id
    return call_id is None and name is not None and name != buffer.name


def _non_empty_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
