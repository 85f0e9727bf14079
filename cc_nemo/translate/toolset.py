"""A request's whole `tools` list, translated once per distinct list (docs/architecture.md,
"Caches").

Claude Code sends the same ~21 tools (~60 KB of JSON) with every turn of a session. The
per-tool memos (tools.py, tokens.py, request.py) already spare the cleaning and counting, but
each request still encoded every tool, hashed every key and looked each up three times. Here
the list is encoded once and compared with the few lists seen last: on a match, its upstream
functions, its tools' token counts and its nesting check are all known at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from cc_nemo.translate import memo
from cc_nemo.translate.memo import RecentMemo
from cc_nemo.translate.tokens import ToolsTally, tally_tools
from cc_nemo.translate.tools import ToolFunctions, tool_functions

# A session's main agent, its subagents and its small-model calls each have their own list;
# a few more for other sessions sharing the proxy. ~0.2 MiB of values per 60 KB list.
RECENT_TOOL_SETS = 8
RECENT_TOOL_SETS_MAX_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class ToolSet:
    """What translation needs of a `tools` list whose every tool passed the nesting check.
    Shared between requests: read-only."""

    functions: ToolFunctions
    tally: ToolsTally


_RECENT: RecentMemo[ToolSet] = RecentMemo(
    "tool lists", max_entries=RECENT_TOOL_SETS, max_weight=RECENT_TOOL_SETS_MAX_BYTES
)


def list_json(tools: object) -> bytes | None:
    """The list's compact JSON, the key of `recall` and `remember`; None for no list, while
    memos are bypassed, or for what JSON cannot encode (only Python callers pass that)."""
    if not isinstance(tools, list) or not memo.active():
        return None
    try:
        return orjson.dumps(tools)
    except TypeError:
        return None


def recall(key: bytes | None) -> ToolSet | None:
    """The ToolSet of a list seen lately, by its JSON (`list_json`); None if not among them."""
    return None if key is None else _RECENT.find(key)


def remember(key: bytes | None, tools: list[Any], keys: tuple[bytes | None, ...]) -> ToolSet:
    """The ToolSet of `tools` (which passed the nesting check; `keys`: memo.tool_keys of
    them), kept under `key` for the next requests that send the same list."""
    tool_set = ToolSet(tool_functions(tools, keys), tally_tools(tools, keys))
    if key is not None:
        _RECENT.add(key, tool_set)
    return tool_set
