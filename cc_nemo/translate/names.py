"""Tool names OpenAI-compatible servers accept (<= 64 chars of [a-zA-Z0-9_-]), reversibly."""

from __future__ import annotations

import hashlib
import re

MAX_TOOL_NAME = 64
_INVALID = re.compile(r"[^a-zA-Z0-9_-]")
_HASH_CHARS = 8


def upstream_tool_name(name: str) -> str:
    """The name we send upstream: unchanged when valid, else a readable prefix + short hash.

    Deterministic, so the same MCP tool gets the same name in `tools`, in the history's
    tool_calls and in tool_choice without any shared state.
    """
    if len(name) <= MAX_TOOL_NAME and not _INVALID.search(name) and name:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    prefix = _INVALID.sub("_", name)[: MAX_TOOL_NAME - _HASH_CHARS - 1]
    return f"{prefix}_{digest}"
