"""Tool calls of a streamed reply: written as their fragments arrive, and salvaged from JSON
text a model wrote instead of calling (docs/wire.md, "The stream state machine": "How
tool-call arguments stream" and "Leaked JSON tool-call salvage").

The first call's tool_use block starts once its name is known (a call seen before it that has
no name yet holds it back); its input streams as far as `ObjectPrefix` can vouch for it. Its
stop waits for the end of the upstream's stream, even when the object closed long before:
Claude Code runs a tool_use block as soon as it stops, and a stream that fails after that makes
it re-send the turn, so the tool would run twice (docs/wire.md, "Why a tool block stops only at
the end"). One block is open at a time, so the rest of the input (whatever a repair decides)
and every later call go out at the end, in order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cc_nemo.translate.blocks import BlockWriter
from cc_nemo.translate.json_repair import (
    ObjectPrefix,
    compact_json,
    parse_arguments,
    repair_json,
)

# (original tool name, input)
ToolCall = tuple[str, dict[str, Any]]

_FENCE = "```"
_NO_FUNCTION: Mapping[str, Any] = {}  # read only


class ArgumentStream:
    """One call's argument text: what upstream sent so far, and the normalised JSON that can
    already go out. `take` hands that out; `resolve` gives the rest when no more can come."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._prefix = ObjectPrefix()
        self._taken: list[str] = []
        # Upstream replaced the text with something that does not extend it (an object after
        # string fragments) once part of it was out: nothing more streams, `resolve` decides.
        self._frozen = False
        self._parsed: tuple[str, bool] | None = None  # (compact JSON, usable) of the text

    @property
    def complete(self) -> bool:
        """The top-level object closed: all of the input is out once taken."""
        return self._prefix.done and not self._frozen

    @property
    def streamable(self) -> bool:
        """Whether the text still reads as a JSON object; a fence, a list or garbage is
        repaired whole at the end instead, where a cut-off call may still be dropped."""
        return self._prefix.streamable

    def append(self, text: str) -> None:
        self._parts.append(text)
        self._parsed = None
        if not self._frozen:
            self._prefix.feed(text)

    def replace(self, text: str) -> None:
        """Arguments sent as an object (or list): they replace the text, as a buffer would,
        unless a complete object already went out: that is the call's input."""
        if self.complete and self._taken:
            return
        old = "".join(self._parts)
        self._parts = [text]
        self._parsed = None
        if self._frozen:
            return
        if text.startswith(old):
            self._prefix.feed(text[len(old) :])
        elif not self._taken:
            self._prefix = ObjectPrefix()  # nothing went out: start over on the new text
            self._prefix.feed(text)
        else:
            self._frozen = True

    def take(self) -> str:
        out = self._prefix.take()
        if out:
            self._taken.append(out)
        return out

    def usable(self) -> bool:
        """Whether the whole text parses or repairs."""
        return self._parse()[1]

    def resolve(self) -> tuple[str, bool]:
        """The rest of the input after what was taken, and whether the arguments were usable.

        It is what the buffered path would give (the compact JSON of `parse_arguments`) when
        that extends what went out, which holds for every text the repair can mend. Otherwise
        what went out is closed as it stands if it is the same object (a repeated key), or
        marked unusable with the raw text (docs/wire.md, "How tool-call arguments stream").
        A complete object is all of the input: text after it changes nothing."""
        if self.complete:
            return "", True
        target, usable = self._parse()
        sent = "".join(self._taken)
        self._taken = [sent]
        if target.startswith(sent):
            return target[len(sent) :], usable
        closing = self._prefix.closing()
        if usable and _same_json(sent + closing, target):
            return closing, True
        return self._prefix.invalidating_tail("".join(self._parts)), False

    def _parse(self) -> tuple[str, bool]:
        if self._parsed is None:
            arguments, usable = parse_arguments("".join(self._parts))
            self._parsed = (compact_json(arguments), usable)
        return self._parsed


def _same_json(left: str, right: str) -> bool:
    try:
        return json.loads(left, strict=False) == json.loads(right, strict=False)
    except (ValueError, RecursionError):
        return False


@dataclass
class _ToolCall:
    upstream_id: str | None = None
    name: str = ""
    arguments: ArgumentStream = field(default_factory=ArgumentStream)
    # Its index now feeds another call (or none): no fragment can reach it any more.
    reachable: bool = True


class ToolCallAssembler:
    """`delta.tool_calls[]` fragments in; tool_use blocks out through a `BlockWriter`, in
    first-seen order: the first one's start and input live, its stop and the other calls at
    `finish`."""

    def __init__(
        self,
        tool_name_map: Mapping[str, str],
        *,
        new_tool_id: Callable[[], str],
        single_call: bool = False,
    ) -> None:
        self._tool_name_map = tool_name_map
        self._new_tool_id = new_tool_id
        self._single_call = single_call  # disable_parallel_tool_use: only the first call
        self._calls: list[_ToolCall] = []
        # The call each upstream index currently feeds; a reused index moves to a new call.
        self._by_index: dict[int, _ToolCall] = {}
        self._last_index: int | None = None
        self._next = 0  # position in _calls of the next call to start
        # The call whose block went out; it stays open until `finish`.
        self._open: _ToolCall | None = None
        # A tool_use block went out: later text must wait until after the tool blocks.
        self.started = False

    def add(self, fragment: object) -> bool:
        """Take one fragment; False when it carried nothing (Cloudflare's null finaliser)."""
        # Runs for every fragment: `type(x) is dict` before the slower Mapping check, and the
        # usual one, more arguments for a known call, first (the same as the general path).
        if type(fragment) is dict and not fragment.get("id"):
            function = fragment.get("function")
            if type(function) is dict and len(function) == 1:
                arguments = function.get("arguments")
                index = fragment.get("index")
                if type(arguments) is str and arguments and type(index) is int:
                    call = self._by_index.get(index)
                    if call is not None:
                        self._last_index = index
                        call.arguments.append(arguments)
                        return True
        if not (type(fragment) is dict or isinstance(fragment, Mapping)):
            return False
        function = fragment.get("function")
        if not (type(function) is dict or isinstance(function, Mapping)):
            function = _NO_FUNCTION
        call_id = _non_empty_str(fragment.get("id"))
        name = _non_empty_str(function.get("name"))
        arguments = function.get("arguments")
        has_arguments = isinstance(arguments, (dict, list)) or (
            isinstance(arguments, str) and arguments != ""
        )
        if call_id is None and name is None and not has_arguments:
            return False
        index = fragment.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = self._last_index if self._last_index is not None else 0
        self._last_index = index
        call = self._by_index.get(index)
        if call is not None and call.name and _starts_new_call(call, call_id, name):
            call.reachable = False
            call = None  # some servers reuse one index for several calls
        if call is None:
            call = _ToolCall()
            self._calls.append(call)
            self._by_index[index] = call
        if call_id and not call.upstream_id:
            call.upstream_id = call_id
        if name and not call.name:
            call.name = name
        if isinstance(arguments, str):
            if arguments:
                call.arguments.append(arguments)
        elif isinstance(arguments, (dict, list)):
            call.arguments.replace(compact_json(arguments))
        return True

    def pump(self, blocks: BlockWriter, events: list[dict]) -> None:
        """Write what may go out now: the first call's block once it is named, then its new
        input. Never a block's stop: that waits for `finish`, and so does every later call."""
        if self._open is not None:
            blocks.tool_json(self._open.arguments.take(), events)
        elif self.ready:
            call = self._calls[self._next]
            self._next += 1
            self._start(call, blocks, events)

    @property
    def ready(self) -> bool:
        """Whether the next `pump` starts the first tool_use block (so what arrived before it
        must go out first)."""
        if self.started:
            return False
        while self._next < len(self._calls):
            call = self._calls[self._next]
            if call.name:
                # Not an object: repaired whole at the end, and the calls after it wait.
                return call.arguments.streamable
            if call.reachable:
                return False  # its name may still come; the calls after it wait, keeping order
            self._next += 1  # never named: dropped
        return False

    def will_write(self, *, cut_off: bool) -> bool:
        """Whether any tool_use block is or will be written (before `finish`)."""
        if self.started:
            return True
        return any(
            call.name and (call.arguments.usable() or not cut_off)
            for call in self._calls[self._next :]
        )

    def finish(self, blocks: BlockWriter, events: list[dict], *, cut_off: bool) -> None:
        """End of stream: the open call's rest, then the calls still waiting. After a `length`
        finish a waiting call past repair is dropped (running a cut-off call would do harm);
        one already started cannot be, and is marked unusable instead."""
        if self._open is not None:
            self._finish_open(blocks, events)
        for call in self._calls[self._next :]:
            if self._single_call and self.started:
                break
            if not call.name or (cut_off and not call.arguments.usable()):
                continue
            self._start(call, blocks, events)
            self._finish_open(blocks, events)
        self._next = len(self._calls)

    def _start(self, call: _ToolCall, blocks: BlockWriter, events: list[dict]) -> None:
        name = self._tool_name_map.get(call.name, call.name)
        blocks.open_tool(self._new_tool_id(), name, events)
        self.started = True
        self._open = call
        blocks.tool_json(call.arguments.take(), events)

    def _finish_open(self, blocks: BlockWriter, events: list[dict]) -> None:
        call = self._open
        if call is None:
            return
        blocks.tool_json(call.arguments.take(), events)
        rest, _ = call.arguments.resolve()
        blocks.tool_json(rest, events)
        blocks.close(events)
        self._open = None


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


def _starts_new_call(call: _ToolCall, call_id: str | None, name: str | None) -> bool:
    if call_id is not None and call.upstream_id is not None:
        return call_id != call.upstream_id
    return call_id is None and name is not None and name != call.name


def _non_empty_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
