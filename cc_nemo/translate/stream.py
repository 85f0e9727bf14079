"""OpenAI chat.completion.chunk stream → Anthropic SSE events: one explicit state machine (WIRE.md D.4).

Text and thinking stream live; tool calls are buffered and emitted at the end because their
name can arrive late, their fragments can interleave and their arguments may need repair.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

import orjson

from cc_nemo.translate.errors import AnthropicError, stream_error_from_chunk
from cc_nemo.translate.json_repair import compact_json, parse_arguments, repair_json
from cc_nemo.translate.request import ResponseContext
from cc_nemo.translate.think import ThinkTagSplitter
from cc_nemo.translate.usage import Usage, usage_from_openai

__all__ = ["StreamTranslator", "Usage", "payload_error", "synthetic_signature", "usage_from_openai"]

BlockKind = Literal["thinking", "text"]
TRUNCATED_MESSAGE = "upstream stream truncated"
_CHARS_PER_OUTPUT_TOKEN = 4


class Phase(Enum):
    """Where the translator is in the Anthropic event grammar."""

    READY = "ready"  # nothing sent yet
    STREAMING = "streaming"  # message_start sent, content may follow
    FINISHED = "finished"  # message_stop sent
    FAILED = "failed"  # error event sent; nothing may follow


@dataclass
class _ToolBuffer:
    upstream_id: str | None = None
    name: str = ""
    argument_parts: list[str] = field(default_factory=list)


def payload_error(payload: Mapping, ctx: ResponseContext) -> AnthropicError | None:
    """An upstream error payload (in a stream or as a 200 body), mapped with the request's own
    figures so an overflow gets the right one of Anthropic's two wordings."""
    return stream_error_from_chunk(
        payload,
        estimated_input_tokens=ctx.estimated_input_tokens,
        context_window=ctx.spec.context_window,
        max_tokens=ctx.max_tokens,
    )


def synthetic_signature(thinking: str) -> str:
    """A visibly fake signature: Claude Code echoes it back and nothing here verifies it."""
    return "ccp1." + hashlib.sha256(thinking.encode("utf-8")).hexdigest()[:16]


class StreamTranslator:
    """Feed parsed upstream chunks; get Anthropic events that satisfy the SDK's invariants."""

    def __init__(
        self, ctx: ResponseContext, *, message_id: str, new_tool_id: Callable[[], str]
    ) -> None:
        self._ctx = ctx
        self._message_id = message_id
        self._new_tool_id = new_tool_id
        quirks = ctx.spec.quirks
        self._phase = Phase.READY
        # The failure an `error` event reported, so the caller can retry instead of sending it.
        self.error: AnthropicError | None = None
        self._next_index = 0
        self._open: BlockKind | None = None
        self._open_thinking: list[str] = []
        self._all_thinking: list[str] = []
        self._text_emitted = False
        self._chars_out = 0
        self._splitter = ThinkTagSplitter(starts_in_think=quirks.starts_in_think_block)
        self._structured_reasoning = False
        self._tools: dict[int, _ToolBuffer] = {}
        self._keys_by_index: dict[int, int] = {}
        self._last_index: int | None = None
        self._last_usage: Mapping | None = None
        self._finish_reason: str | None = None
        self._matched_stop: str | None = None
        self._prefill = ctx.prefill
        # gpt-oss may answer a tool call as JSON text: hold text that looks like JSON until the
        # end so it can become tool_use instead (WIRE.md C.4 #6, D.4 "streaming salvage").
        self._holding = bool(quirks.salvage_leaked_tool_calls and ctx.offered_tools)
        self._held: list[str] = []
        # Three non-space characters settle whether held text can be a JSON tool call.
        self._held_looks_like_json = False

    @property
    def finished(self) -> bool:
        """message_stop or an error event was emitted: nothing more may be sent."""
        return self._phase in (Phase.FINISHED, Phase.FAILED)

    @property
    def usage(self) -> Usage:
        """Upstream usage when it came, else our estimates (for the usage log)."""
        return usage_from_openai(
            self._last_usage,
            fallback_input=self._ctx.estimated_input_tokens,
            fallback_output=-(-self._chars_out // _CHARS_PER_OUTPUT_TOKEN),
        )

    def start(self) -> list[dict]:
        """message_start, at once, with the local input estimate (the real one comes at the end)."""
        if self._phase is not Phase.READY:
            return []
        self._phase = Phase.STREAMING
        return [
            {
                "type": "message_start",
                "message": {
                    "id": self._message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": self._ctx.requested_model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": self._ctx.estimated_input_tokens,
                        "output_tokens": 1,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                },
            }
        ]

    def feed(self, chunk: Mapping) -> list[dict]:
        """One parsed `data:` object from upstream."""
        if self.finished:
            return []
        events = self.start()
        if not isinstance(chunk, Mapping):
            return events
        error = payload_error(chunk, self._ctx)
        if error is not None:
            return events + self.fail(error)
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self._last_usage = usage
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
            self._feed_choice(choices[0], events)
        return events

    def feed_data(self, data: str) -> list[dict]:
        """One raw `data:` payload: `[DONE]` finishes; a line that is not a JSON object (a
        keep-alive, or the cut-off tail of a dead stream) is skipped."""
        if data.strip() == "[DONE]":
            return self.finish(saw_done=True)
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []
        return self.feed(chunk) if isinstance(chunk, dict) else []

    def finish(self, *, saw_done: bool) -> list[dict]:
        """End of upstream: close blocks, emit buffered tool calls, message_delta, message_stop."""
        if self.finished:
            return []
        events = self.start()
        if not saw_done and self._finish_reason is None:
            # A cut-off stream must not look like a complete answer: make the client retry.
            return events + self.fail(AnthropicError(500, "api_error", TRUNCATED_MESSAGE))
        for kind, text in self._splitter.flush():
            self._emit(kind, text, events)
        calls = self._settle_held_text(self._buffered_calls(), events)
        if self._ctx.disable_parallel_tool_use:
            calls = calls[:1]
        if not calls and not self._text_emitted:
            self._reasoning_as_text(events)
        if self._prefill and not self._text_emitted:
            self._close_block(events)
            self._open_block("text", events)
            self._delta({"type": "text_delta", "text": self._prefill}, events)
            self._text_emitted = True
            self._prefill = ""
        self._close_block(events)
        for name, arguments in calls:
            self._emit_tool_use(name, arguments, events)
        stop_reason, stop_sequence = self._stop_reason(tool_used=bool(calls))
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": self.usage.as_dict(),
            }
        )
        events.append({"type": "message_stop"})
        self._phase = Phase.FINISHED
        return events

    def fail(self, error: AnthropicError) -> list[dict]:
        """A failure mid-stream: one error event and nothing after it (no message_stop)."""
        if self.finished:
            return []
        events = self.start()
        events.append(error.event())
        self.error = error
        self._phase = Phase.FAILED
        return events

    # --- per chunk ----------------------------------------------------------------------

    def _feed_choice(self, choice: Mapping, events: list[dict]) -> None:
        delta = choice.get("delta")
        if not isinstance(delta, Mapping):
            delta = choice.get("message")
        if isinstance(delta, Mapping):
            reasoning = _reasoning_text(delta)
            if reasoning:
                if not self._structured_reasoning:
                    self._structured_reasoning = True
                    for kind, text in self._splitter.flush():
                        self._emit(kind, text, events)
                self._emit("thinking", reasoning, events)
            content = _content_text(delta.get("content"))
            if content:
                if self._structured_reasoning:
                    self._emit("text", content, events)
                else:
                    for kind, text in self._splitter.feed(content):
                        self._emit(kind, text, events)
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                self._emit("text", refusal, events)
            tool_calls = delta.get("tool_calls")
            if isinstance(tool_calls, list):
                for fragment in tool_calls:
                    self._buffer_tool_fragment(fragment, events)
        finish_reason = choice.get("finish_reason")
        if isinstance(finish_reason, str) and finish_reason:
            self._finish_reason = finish_reason
        matched_stop = choice.get("stop_reason")
        if isinstance(matched_stop, str) and matched_stop:
            self._matched_stop = matched_stop

    def _emit(self, kind: BlockKind, text: str, events: list[dict]) -> None:
        if kind == "thinking":
            self._write_thinking(text, events)
        elif self._holding:
            self._held.append(text)
            if self._held_looks_like_json:
                return  # decided: re-joining the held text per fragment would be quadratic
            held = "".join(self._held)
            head = held.lstrip()
            if not _may_be_leaked_call(head):
                self._held = []
                self._holding = False
                self._write_text(held, events)
            elif len(head) >= len(_FENCE):
                self._held_looks_like_json = True
        else:
            self._write_text(text, events)

    def _write_thinking(self, text: str, events: list[dict]) -> None:
        if self._open != "thinking":
            text = text.lstrip()
            if not text:
                return
            self._close_block(events)
            self._open_block("thinking", events)
        self._open_thinking.append(text)
        self._chars_out += len(text)
        self._delta({"type": "thinking_delta", "thinking": text}, events)

    def _write_text(self, text: str, events: list[dict]) -> None:
        if self._open != "text":
            text = text.lstrip()
            if not text:
                return
            if self._prefill:
                text, self._prefill = self._prefill + text, ""
            self._close_block(events)
            self._open_block("text", events)
            self._text_emitted = True
        self._chars_out += len(text)
        self._delta({"type": "text_delta", "text": text}, events)

    def _buffer_tool_fragment(self, fragment: object, events: list[dict]) -> None:
        if not isinstance(fragment, Mapping):
            return
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
            return  # Cloudflare's null finaliser fragment
        if self._holding:
            # Real tool calls: nothing to salvage, so stop holding text back.
            held = "".join(self._held)
            self._held = []
            self._holding = False
            self._write_text(held, events)
        index = fragment.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = self._last_index if self._last_index is not None else 0
        self._last_index = index
        key = self._keys_by_index.get(index)
        buffer = self._tools.get(key) if key is not None else None
        if buffer is not None and buffer.name and _starts_new_call(buffer, call_id, name):
            buffer = None  # some servers reuse one index for several calls
        if buffer is None:
            key = len(self._tools)
            buffer = _ToolBuffer()
            self._tools[key] = buffer
            self._keys_by_index[index] = key
        if call_id and not buffer.upstream_id:
            buffer.upstream_id = call_id
        if name and not buffer.name:
            buffer.name = name
        if isinstance(arguments, str):
            buffer.argument_parts.append(arguments)
        elif isinstance(arguments, dict | list):
            buffer.argument_parts = [compact_json(arguments)]

    # --- end of stream --------------------------------------------------------------------

    def _settle_held_text(
        self, calls: list[tuple[str, dict[str, Any]]], events: list[dict]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Text held for salvage becomes tool calls if it is a leaked call, else plain text."""
        if not self._held:
            return calls
        held = "".join(self._held)
        self._held = []
        self._holding = False
        salvaged = None if calls else self._salvage(held)
        if salvaged:
            return salvaged
        self._write_text(held, events)
        return calls

    def _reasoning_as_text(self, events: list[dict]) -> None:
        """Models that answer only in reasoning (Nemotron) would leave the user an empty reply."""
        if not self._ctx.spec.quirks.reasoning_as_text_fallback:
            return
        thinking = "\n\n".join([*self._all_thinking, "".join(self._open_thinking)]).strip()
        if thinking:
            self._write_text(thinking, events)

    def _buffered_calls(self) -> list[tuple[str, dict[str, Any]]]:
        calls: list[tuple[str, dict[str, Any]]] = []
        for buffer in self._tools.values():
            if not buffer.name:
                continue  # a call without a name cannot be answered
            arguments, usable = parse_arguments("".join(buffer.argument_parts))
            if not usable and self._finish_reason == "length":
                continue  # cut off mid-arguments: running it would do the wrong thing
            calls.append((self._original_name(buffer.name), arguments))
        return calls

    def _salvage(self, text: str) -> list[tuple[str, dict[str, Any]]] | None:
        """Tool calls a model wrote as JSON text, if every one names an offered tool."""
        parsed = repair_json(text.strip())
        items = parsed if isinstance(parsed, list) else [parsed]
        calls: list[tuple[str, dict[str, Any]]] = []
        for item in items:
            if not isinstance(item, Mapping):
                return None
            if isinstance(item.get("function"), Mapping):
                item = item["function"]
            name = item.get("name")
            if not isinstance(name, str) or not self._is_offered(name):
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
            calls.append((self._original_name(name), arguments))
        return calls or None

    def _is_offered(self, upstream_name: str) -> bool:
        original = self._ctx.tool_name_map.get(upstream_name, upstream_name)
        return original in self._ctx.offered_tools

    def _original_name(self, upstream_name: str) -> str:
        return self._ctx.tool_name_map.get(upstream_name, upstream_name)

    def _emit_tool_use(self, name: str, arguments: dict[str, Any], events: list[dict]) -> None:
        index = self._next_index
        self._next_index += 1
        events.append(
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {
                    "type": "tool_use",
                    "id": self._new_tool_id(),
                    "name": name,
                    "input": {},
                },
            }
        )
        partial_json = compact_json(arguments)
        self._chars_out += len(partial_json)
        events.append(
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": partial_json},
            }
        )
        events.append({"type": "content_block_stop", "index": index})

    def _stop_reason(self, *, tool_used: bool) -> tuple[str, str | None]:
        """WIRE.md D.5: the presence of tool_use wins over whatever finish_reason says."""
        if tool_used:
            return "tool_use", None
        if self._finish_reason == "length":
            return "max_tokens", None
        if self._finish_reason == "content_filter":
            return "refusal", None
        if self._matched_stop is not None and self._matched_stop in self._ctx.stop_sequences:
            return "stop_sequence", self._matched_stop
        return "end_turn", None

    # --- blocks ---------------------------------------------------------------------------

    def _open_block(self, kind: BlockKind, events: list[dict]) -> None:
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

    def _close_block(self, events: list[dict]) -> None:
        if self._open is None:
            return
        if self._open == "thinking":
            thinking = "".join(self._open_thinking)
            self._all_thinking.append(thinking)
            self._open_thinking = []
            self._delta(
                {"type": "signature_delta", "signature": synthetic_signature(thinking)}, events
            )
        events.append({"type": "content_block_stop", "index": self._next_index})
        self._next_index += 1
        self._open = None


def _reasoning_text(delta: Mapping) -> str:
    """reasoning_content ?? reasoning, else OpenRouter's reasoning_details texts."""
    for key in ("reasoning_content", "reasoning"):
        value = delta.get(key)
        if isinstance(value, str) and value:
            return value
    details = delta.get("reasoning_details")
    if not isinstance(details, list):
        return ""
    texts = []
    for detail in details:
        if isinstance(detail, Mapping):
            text = detail.get("text") or detail.get("summary")
            if isinstance(text, str):
                texts.append(text)
    return "".join(texts)


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


_FENCE = "```"


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
