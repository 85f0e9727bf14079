"""Local input-token estimate for count_tokens and max_tokens clamping (no upstream tokenizer exists).

Calibration (figures to be refined against a real tokenizer): ASCII text/code/JSON at
3.6 characters per token; other characters at about one token each; images 1600 tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

ASCII_CHARS_PER_TOKEN = 3.6
NON_ASCII_TOKENS_PER_CHAR = 1.0
IMAGE_TOKENS = 1600
MESSAGE_OVERHEAD_TOKENS = 4
TOOL_OVERHEAD_TOKENS = 8
REQUEST_OVERHEAD_TOKENS = 3


class _Tally:
    """Sums characters by class; cheap enough to run on every multi-megabyte request."""

    __slots__ = ("ascii_chars", "extra_tokens", "non_ascii_chars")

    def __init__(self) -> None:
        self.ascii_chars = 0
        self.non_ascii_chars = 0
        self.extra_tokens = 0

    def add(self, text: object) -> None:
        if not isinstance(text, str) or not text:
            return
        if text.isascii():
            self.ascii_chars += len(text)
            return
        non_ascii = len(text) - len(text.encode("ascii", "ignore"))
        self.non_ascii_chars += non_ascii
        self.ascii_chars += len(text) - non_ascii

    def tokens(self) -> int:
        return (
            round(self.ascii_chars / ASCII_CHARS_PER_TOKEN)
            + round(self.non_ascii_chars * NON_ASCII_TOKENS_PER_CHAR)
            + self.extra_tokens
        )


def estimate_tokens(request: Mapping) -> int:
    """Estimated input tokens of an Anthropic request (system + messages + tools); always >= 1."""
    tally = _Tally()
    tally.extra_tokens += REQUEST_OVERHEAD_TOKENS
    system = request.get("system")
    if isinstance(system, str):
        tally.add(system)
    elif isinstance(system, list):
        _add_blocks(tally, system)
    messages = request.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, Mapping):
                continue
            tally.extra_tokens += MESSAGE_OVERHEAD_TOKENS
            content = message.get("content")
            if isinstance(content, str):
                tally.add(content)
            elif isinstance(content, list):
                _add_blocks(tally, content)
    tools = request.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            if not isinstance(tool, Mapping):
                continue
            tally.extra_tokens += TOOL_OVERHEAD_TOKENS
            tally.add(tool.get("name"))
            tally.add(tool.get("description"))
            schema = tool.get("input_schema")
            if schema is not None:
                tally.add(_compact(schema))
    return max(tally.tokens(), 1)


def _add_blocks(tally: _Tally, blocks: Iterable[Any]) -> None:
    for block in blocks:
        if isinstance(block, str):
            tally.add(block)
            continue
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text":
            tally.add(block.get("text"))
        elif kind == "tool_use":
            tally.add(block.get("name"))
            tally.add(_compact(block.get("input")))
        elif kind == "tool_result":
            content = block.get("content")
            if isinstance(content, str):
                tally.add(content)
            elif isinstance(content, list):
                _add_blocks(tally, content)
        elif kind == "image":
            tally.extra_tokens += IMAGE_TOKENS
        elif kind == "document":
            _add_document(tally, block)
        elif kind == "search_result":
            tally.add(block.get("title"))
            content = block.get("content")
            if isinstance(content, list):
                _add_blocks(tally, content)
        elif kind == "mid_conv_system":
            content = block.get("content")
            if isinstance(content, str):
                tally.add(content)
            elif isinstance(content, list):
                _add_blocks(tally, content)
        elif kind == "tool_reference":
            tally.add(block.get("tool_name"))


def _add_document(tally: _Tally, block: Mapping) -> None:
    source = block.get("source")
    if not isinstance(source, Mapping):
        return
    if source.get("type") == "text":
        tally.add(source.get("data"))
    elif source.get("type") == "content" and isinstance(source.get("content"), list):
        _add_blocks(tally, source["content"])
    else:
        tally.extra_tokens += IMAGE_TOKENS


def _compact(value: object) -> str:
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:
        return str(value)
