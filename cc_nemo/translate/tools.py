"""The request's tools in upstream terms: functions, cleaned schemas, tool names, tool_choice."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from cc_nemo.settings.catalog import BUILTIN_MODELS, ModelQuirks, ModelSpec
from cc_nemo.translate import memo
from cc_nemo.translate.memo import BoundedMemo
from cc_nemo.translate.names import upstream_tool_name
from cc_nemo.translate.schema import sanitize_tool_schema

# A tool's cleaned function, keyed by the tool's JSON: Claude Code sends the same ~21 tools
# (~60 KB) every turn, and cleaning their schemas was a third of translating a request.
# Bounded by the keys' bytes; the values take ~2.3x as much again, so at most ~3.3 MiB stay
# alive: ~17 sets of Claude Code's tools (docs/architecture.md, "Caches").
TOOL_MEMO_MAX_ENTRIES = 1024
TOOL_MEMO_MAX_BYTES = 1024 * 1024
_FUNCTIONS: BoundedMemo[bytes, dict[str, Any]] = BoundedMemo(
    "tool functions", max_entries=TOOL_MEMO_MAX_ENTRIES, max_weight=TOOL_MEMO_MAX_BYTES
)


@dataclass(frozen=True)
class ToolOffer:
    """What the upstream body gets for the request's tools, and what the reply side must know."""

    # tools, tool_choice, parallel_tool_calls; empty when no tool is offered.
    fields: dict[str, Any]
    # The client's names of the offered tools, in order.
    offered: tuple[str, ...]
    forced: bool
    disable_parallel: bool
    # fields["tools"] already encoded, for the upstream body (None when none is offered).
    encoded_tools: orjson.Fragment | None = None


@dataclass(frozen=True)
class ToolFunctions:
    """A tools list as upstream functions (read-only: shared between requests), and the client
    name of each upstream name, first seen first."""

    functions: list[dict[str, Any]]
    names: tuple[tuple[str, str], ...]
    # The functions' JSON: a kept list is encoded once, not into every upstream body. None
    # for what JSON cannot encode (only Python callers pass that).
    encoded: orjson.Fragment | None


def tool_functions(tools: object, keys: tuple[bytes | None, ...]) -> ToolFunctions:
    """`tools` as upstream functions; `keys`: memo.tool_keys of them."""
    names: dict[str, str] = {}
    functions = _functions(tools, names, keys)
    try:
        encoded = orjson.Fragment(orjson.dumps(functions))
    except TypeError:
        encoded = None
    return ToolFunctions(functions, tuple(names.items()), encoded)


def offer_tools(
    request: Mapping,
    quirks: ModelQuirks,
    names: dict[str, str],
    functions: ToolFunctions | None = None,
) -> ToolOffer:
    """Map the request's tools and tool_choice (docs/wire.md, "Request translation"), recording
    each upstream name's client name in `names`. `functions`: tool_functions of the request's
    tools, when the caller has them already (toolset.py)."""
    if functions is None:
        tools = request.get("tools")
        functions = tool_functions(tools, memo.tool_keys(tools))
    for upstream, client in functions.names:
        names.setdefault(upstream, client)
    listed = functions.functions
    choice = request.get("tool_choice")
    choice_kind = choice.get("type") if isinstance(choice, Mapping) else None
    if choice_kind == "none":
        listed = []
    disable_parallel = bool(
        isinstance(choice, Mapping) and choice.get("disable_parallel_tool_use") is True
    )
    fields: dict[str, Any] = {}
    forced = False
    encoded = None
    if listed:
        fields["tools"] = listed
        encoded = functions.encoded
        tool_choice = _tool_choice(choice, quirks, listed)
        if tool_choice is not None:
            fields["tool_choice"] = tool_choice
            forced = choice_kind in ("any", "tool")
        if disable_parallel:
            fields["parallel_tool_calls"] = False
    return ToolOffer(
        fields=fields,
        offered=tuple(names[f["function"]["name"]] for f in listed),
        forced=forced,
        disable_parallel=disable_parallel,
        encoded_tools=encoded,
    )


def map_name(name: str, names: dict[str, str]) -> str:
    """The upstream name for a client tool name; the first client name seen for it wins."""
    upstream = upstream_tool_name(name)
    names.setdefault(upstream, name)
    return upstream


def no_tools_message(requested_model: str, spec: ModelSpec) -> str:
    """Names tool-capable models, so the user can fix the choice instead of reading a cryptic
    upstream failure."""
    suggestions = [m.alias for m in BUILTIN_MODELS if m.tools and m.context_window >= 100_000][:4]
    return (
        f"model {requested_model!r} is served by {spec.model}, which does not support tool use, "
        f"and this request offers tools; choose a tool-capable model such as "
        f"{', '.join(suggestions)}"
    )


def _functions(tools: object, names: dict[str, str], keys: tuple[bytes | None, ...]) -> list[dict]:
    """Custom tools as OpenAI functions; Anthropic server tools cannot run upstream: dropped."""
    if not isinstance(tools, list):
        return []
    functions: list[dict] = []
    seen: set[str] = set()
    for position, tool in enumerate(tools):
        if not isinstance(tool, Mapping) or tool.get("type") not in (None, "custom"):
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            continue
        upstream = map_name(name, names)
        if upstream in seen:
            continue
        seen.add(upstream)
        functions.append({"type": "function", "function": _function(tool, keys[position])})
    return functions


def _function(tool: Mapping, key: bytes | None) -> dict[str, Any]:
    """The OpenAI function for a custom tool with a valid name (remembered by its JSON)."""
    if key is None:
        return _build_function(tool)
    # Computed from the JSON the key denotes, so the result is a function of the key alone:
    # for parsed JSON that is the tool itself; a Python caller's tuple reads as a list.
    return _FUNCTIONS.get(key, len(key), lambda: _build_function(orjson.loads(key)))


def _build_function(tool: Mapping) -> dict[str, Any]:
    function: dict[str, Any] = {"name": upstream_tool_name(tool["name"])}
    description = tool.get("description")
    if isinstance(description, str) and description.strip():
        function["description"] = description
    function["parameters"] = sanitize_tool_schema(tool.get("input_schema"))
    return function


def _tool_choice(
    choice: object, quirks: ModelQuirks, functions: list[dict[str, Any]]
) -> object | None:
    if not isinstance(choice, Mapping):
        return None
    kind = choice.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return quirks.tool_choice_any
    if kind == "tool":
        name = choice.get("name")
        upstream = upstream_tool_name(name) if isinstance(name, str) and name else None
        if any(f["function"]["name"] == upstream for f in functions):
            return {"type": "function", "function": {"name": upstream}}
        return quirks.tool_choice_any
    return None
