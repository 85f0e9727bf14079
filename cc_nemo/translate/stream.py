"""OpenAI chat.completion.chunk stream → Anthropic SSE events: one explicit state machine
(docs/wire.md, "The stream state machine").

Text and thinking stream live through a `BlockWriter`. Tool calls stream too, through a
`ToolCallAssembler`: a block starts once the call's name is known, and its input goes out as far
as no later fragment or repair can change it; but no tool_use block stops before `finish`
(Claude Code runs a stopped block at once, even if the stream then fails). Content that arrives
once a tool_use block has started waits until after the tool blocks (one block is open at a
time).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum

import orjson

from cc_nemo.translate.blocks import BlockKind, BlockWriter, synthetic_signature
from cc_nemo.translate.errors import AnthropicError, stream_error_from_chunk
from cc_nemo.translate.request import ResponseContext
from cc_nemo.translate.think import ThinkTagSplitter
from cc_nemo.translate.tool_calls import LeakedCallSalvage, ToolCallAssembler
from cc_nemo.translate.usage import Usage, usage_from_openai

__all__ = [
    "TRUNCATED_MESSAGE",
    "StreamTranslator",
    "Usage",
    "payload_error",
    "synthetic_signature",
    "usage_from_openai",
]

TRUNCATED_MESSAGE = "upstream stream truncated"
# The keys of a delta that only carries answer text (the role comes with the first).
_CONTENT_ONLY = frozenset({"content", "role"})
# The keys of a delta that only carries tool-call fragments (with no content, or an empty one).
_TOOL_CALLS_ONLY = frozenset({"tool_calls", "content", "role"})
_CHARS_PER_OUTPUT_TOKEN = 4


class Phase(Enum):
    """Where the translator is in the Anthropic event grammar."""

    READY = "ready"  # nothing sent yet
    STREAMING = "streaming"  # message_start sent, content may follow
    FINISHED = "finished"  # message_stop sent
    FAILED = "failed"  # error event sent; nothing may follow


# For the per-chunk check: looking up an Enum member costs ~150 ns on Python 3.11.
_READY = Phase.READY


def payload_error(payload: Mapping, ctx: ResponseContext) -> AnthropicError | None:
    """An upstream error payload (in a stream or as a 200 body), mapped with the request's own
    figures so an overflow gets the right one of Anthropic's two wordings."""
    return stream_error_from_chunk(
        payload,
        estimated_input_tokens=ctx.estimated_input_tokens,
        context_window=ctx.spec.context_window,
        max_tokens=ctx.max_tokens,
    )


class StreamTranslator:
    """Feed parsed upstream chunks; get Anthropic events that satisfy the SDK's invariants.

    Its own state is the `Phase` and what upstream has said so far (usage, finish reason).
    Content goes to a `BlockWriter`, tool-call fragments to a `ToolCallAssembler`, and text
    that may be a leaked JSON tool call is held by a `LeakedCallSalvage` first.
    """

    def __init__(
        self, ctx: ResponseContext, *, message_id: str, new_tool_id: Callable[[], str]
    ) -> None:
        self._ctx = ctx
        self._message_id = message_id
        self._new_tool_id = new_tool_id
        quirks = ctx.spec.quirks
        self._phase = Phase.READY
        # message_stop or an error event was emitted: nothing more may be sent. A plain
        # attribute, kept with `_phase`: the proxy reads it after every upstream message.
        self.finished = False
        # The failure an `error` event reported, so the caller can retry instead of sending it.
        self.error: AnthropicError | None = None
        self._blocks = BlockWriter(prefill=ctx.prefill)
        self._tools = ToolCallAssembler(
            ctx.tool_name_map,
            new_tool_id=new_tool_id,
            single_call=ctx.disable_parallel_tool_use,
        )
        # Text and thinking that came after a tool_use block started: written after the tools.
        self._late: list[tuple[BlockKind, str]] = []
        self._salvage = LeakedCallSalvage(
            enabled=bool(quirks.salvage_leaked_tool_calls and ctx.offered_tools),
            tool_name_map=ctx.tool_name_map,
            offered_tools=ctx.offered_tools,
        )
        self._splitter = ThinkTagSplitter(starts_in_think=quirks.starts_in_think_block)
        # Once a reasoning field is seen, content is plain text: no think tags to split out.
        self._structured_reasoning = False
        self._last_usage: Mapping | None = None
        self._finish_reason: str | None = None
        self._matched_stop: str | None = None

    @property
    def usage(self) -> Usage:
        """Upstream usage when it came, else our estimates (for the usage log)."""
        return usage_from_openai(
            self._last_usage,
            fallback_input=self._ctx.estimated_input_tokens,
            fallback_output=-(-self._blocks.chars_out // _CHARS_PER_OUTPUT_TOKEN),
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
        # This and `_feed_choice` run for every upstream chunk: `type(x) is dict` before the
        # slower Mapping check (parsed JSON is dicts; Python callers may pass any Mapping).
        if self.finished:
            return []
        events = self.start() if self._phase is _READY else []
        if not (type(chunk) is dict or isinstance(chunk, Mapping)):
            return events
        # Every error payload has one of these (errors.stream_error_from_chunk decides).
        if "error" in chunk or "success" in chunk or chunk.get("object") == "error":
            error = payload_error(chunk, self._ctx)
            if error is not None:
                return events + self.fail(error)
        usage = chunk.get("usage")
        if type(usage) is dict or (usage is not None and isinstance(usage, Mapping)):
            self._last_usage = usage
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices:
            choice = choices[0]
            if type(choice) is dict or isinstance(choice, Mapping):
                self._feed_choice(choice, events)
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
        """End of upstream: the held-back rest of tool calls and text, message_delta,
        message_stop."""
        if self.finished:
            return []
        events = self.start()
        if not saw_done and self._finish_reason is None:
            # A cut-off stream must not look like a complete answer: make the client retry.
            return events + self.fail(AnthropicError(500, "api_error", TRUNCATED_MESSAGE))
        for kind, text in self._splitter.flush():
            self._emit(kind, text, events)
        cut_off = self._finish_reason == "length"
        # Held text is a leaked call only when no real call came (salvage stops holding at the
        # first real fragment, so then there is nothing to settle).
        salvaged, held_text = self._salvage.settle([])
        if held_text:
            self._blocks.text(held_text, events)
        if self._ctx.disable_parallel_tool_use:
            salvaged = salvaged[:1]
        tool_used = bool(salvaged) or self._tools.will_write(cut_off=cut_off)
        if (
            not tool_used
            and not self._blocks.text_emitted
            and self._ctx.spec.quirks.reasoning_as_text_fallback
        ):
            self._blocks.reasoning_as_text(events)
        self._tools.finish(self._blocks, events, cut_off=cut_off)
        self._blocks.close_with_prefill(events)
        for name, arguments in salvaged:
            self._blocks.tool_use(self._new_tool_id(), name, arguments, events)
        for kind, text in self._late:
            if kind == "thinking":
                self._blocks.thinking(text, events)
            else:
                self._blocks.text(text, events)
        self._late = []
        self._blocks.close(events)
        stop_reason, stop_sequence = self._stop_reason(tool_used=tool_used)
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": self.usage.as_dict(),
            }
        )
        events.append({"type": "message_stop"})
        self._phase = Phase.FINISHED
        self.finished = True
        return events

    def fail(self, error: AnthropicError) -> list[dict]:
        """A failure mid-stream: one error event and nothing after it (no message_stop)."""
        if self.finished:
            return []
        events = self.start()
        events.append(error.event())
        self.error = error
        self._phase = Phase.FAILED
        self.finished = True
        return events

    def _feed_choice(self, choice: Mapping, events: list[dict]) -> None:
        delta = choice.get("delta")
        if not (type(delta) is dict or isinstance(delta, Mapping)):
            delta = choice.get("message")
        if type(delta) is dict and delta.keys() <= _CONTENT_ONLY:
            # The usual chunk, a piece of answer text: no reasoning, refusal or tool calls.
            content = delta.get("content")
            if type(content) is str and content:
                self._feed_content(content, events)
            elif content is not None:
                self._feed_delta(delta, events)
        elif type(delta) is dict and delta.keys() <= _TOOL_CALLS_ONLY and not delta.get("content"):
            # The other usual chunk, tool-call fragments: no reasoning, text or refusal.
            self._feed_tool_calls(delta.get("tool_calls"), events)
        elif isinstance(delta, Mapping):
            self._feed_delta(delta, events)
        finish_reason = choice.get("finish_reason")
        if isinstance(finish_reason, str) and finish_reason:
            self._finish_reason = finish_reason
        matched_stop = choice.get("stop_reason")
        if isinstance(matched_stop, str) and matched_stop:
            self._matched_stop = matched_stop

    def _feed_delta(self, delta: Mapping, events: list[dict]) -> None:
        reasoning = _reasoning_text(delta)
        if reasoning:
            if not self._structured_reasoning:
                self._structured_reasoning = True
                for kind, text in self._splitter.flush():
                    self._emit(kind, text, events)
            self._emit("thinking", reasoning, events)
        content = _content_text(delta.get("content"))
        if content:
            self._feed_content(content, events)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._emit("text", refusal, events)
        self._feed_tool_calls(delta.get("tool_calls"), events)

    def _feed_tool_calls(self, tool_calls: object, events: list[dict]) -> None:
        if isinstance(tool_calls, list):
            for fragment in tool_calls:
                if self._tools.add(fragment) and self._salvage.holding:
                    # Real tool calls: nothing to salvage, so stop holding text back.
                    self._blocks.text(self._salvage.release(), events)
            if self._tools.ready:
                # A partial think tag held back arrived before the call: it goes first.
                for kind, text in self._splitter.flush():
                    self._emit(kind, text, events)
            self._tools.pump(self._blocks, events)

    def _feed_content(self, content: str, events: list[dict]) -> None:
        if self._structured_reasoning or self._splitter.in_text:
            # No think tags to split out: after a reasoning field, or past the reasoning.
            self._emit("text", content, events)
        else:
            for kind, text in self._splitter.feed(content):
                self._emit(kind, text, events)

    def _emit(self, kind: BlockKind, text: str, events: list[dict]) -> None:
        if self._tools.started:
            self._late.append((kind, text))
        elif kind == "thinking":
            self._blocks.thinking(text, events)
        elif self._salvage.holding:
            text = self._salvage.hold(text)
            if text:
                self._blocks.text(text, events)
        else:
            self._blocks.text(text, events)

    def _stop_reason(self, *, tool_used: bool) -> tuple[str, str | None]:
        """The presence of tool_use wins over whatever finish_reason says (docs/wire.md,
        "Response translation": the stop_reason table)."""
        if tool_used:
            return "tool_use", None
        if self._finish_reason == "length":
            return "max_tokens", None
        if self._finish_reason == "content_filter":
            return "refusal", None
        if self._matched_stop is not None and self._matched_stop in self._ctx.stop_sequences:
            return "stop_sequence", self._matched_stop
        return "end_turn", None


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
