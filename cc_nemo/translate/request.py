"""Anthropic Messages request → OpenAI Chat Completions request: validation, then the body
assembled from history, tools and reasoning controls (docs/wire.md, "Request translation")."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain, compress, tee
from typing import Any

import orjson

from cc_nemo.settings.catalog import ModelQuirks, ModelSpec
from cc_nemo.translate import toolset
from cc_nemo.translate.history import split_prefill, upstream_messages
from cc_nemo.translate.memo import BoundedMemo, tool_keys
from cc_nemo.translate.reasoning import response_format, thinking_controls
from cc_nemo.translate.tokens import estimate_tokens
from cc_nemo.translate.tools import no_tools_message, offer_tools
from cc_nemo.translate.toolset import ToolSet

# Head-room between the estimated prompt and the context window; grows with the prompt
# because the estimate's error does.
CONTEXT_MARGIN_TOKENS = 1024
CONTEXT_MARGIN_FRACTION = 0.05
# The smallest output budget worth sending: room for a compaction summary or a real answer.
MIN_REPLY_TOKENS = 4096

_ROLES = ("user", "assistant", "system")
# How deep a request body may nest. orjson encodes at most 255 levels and the upstream body
# wraps a tool schema one level deeper than the request does; past orjson, the JSON fallbacks
# are recursive. Real tool schemas and tool inputs stay far below this.
MAX_NESTING_DEPTH = 128
_MAX_PATH_CHARS = 200
# The exact types orjson parses into (subclasses only come from Python callers).
_CONTAINERS = frozenset({dict, list})
# The JSON of tools that passed the nesting check: Claude Code's ~21 tool schemas are 80 % of
# the walk over its request, and the same every turn (docs/architecture.md, "Caches"). Keys
# only, like the tool memos' (tools.py); an entry is added by the check itself, nothing else.
_WITHIN_NESTING: BoundedMemo[bytes, bool] = BoundedMemo(
    "tools within the nesting limit", max_entries=1024, max_weight=1024 * 1024
)


class InvalidRequest(ValueError):
    """A request we answer with 400 invalid_request_error; the message names the field."""


class ContextOverflow(InvalidRequest):
    """The prompt leaves the model no room to answer; the message is Anthropic's own wording."""


@dataclass(frozen=True)
class ResponseContext:
    """Everything the response side needs to know about the request it answers."""

    requested_model: str
    spec: ModelSpec
    tool_name_map: Mapping[str, str]
    offered_tools: tuple[str, ...]
    stop_sequences: tuple[str, ...]
    estimated_input_tokens: int
    forced_tool: bool
    thinking_enabled: bool
    disable_parallel_tool_use: bool
    # A trailing assistant message we could not send upstream; the reply starts with it.
    prefill: str = ""
    # The max_tokens actually sent upstream (after clamping), for overflow error wording.
    max_tokens: int | None = None


@dataclass(frozen=True)
class TranslatedRequest:
    """The upstream body plus the context for translating its answer back."""

    body: dict
    context: ResponseContext
    # `body` for orjson to encode: the same, with the tools list already encoded as an
    # orjson.Fragment; read it as JSON, never as Python values.
    to_send: dict


@dataclass(frozen=True)
class CheckedRequest:
    """A request that passed validate_request, and what translation needs of its tools list
    (toolset.py; None without a list), for every translation of it (a fallback's too)."""

    request: dict
    tools: ToolSet | None


def validate_request(request: object, *, require_max_tokens: bool = True) -> dict:
    """Check the required fields so a bad body becomes a clear 400, never a crash
    (count_tokens bodies carry no max_tokens)."""
    return check_request(request, require_max_tokens=require_max_tokens).request


def check_request(request: object, *, require_max_tokens: bool = True) -> CheckedRequest:
    """validate_request, keeping the tools' memo keys it computed."""
    if not isinstance(request, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = request.get("model")
    if model is None:
        raise InvalidRequest("model: field required")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: must be a non-empty string")
    max_tokens = request.get("max_tokens")
    if max_tokens is None and require_max_tokens:
        raise InvalidRequest("max_tokens: field required")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0
    ):
        raise InvalidRequest("max_tokens: must be an integer >= 0")
    messages = request.get("messages")
    if messages is None:
        raise InvalidRequest("messages: field required")
    if not isinstance(messages, list):
        raise InvalidRequest("messages: must be a list")
    if not messages:
        raise InvalidRequest("messages: at least one message is required")
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages.{position}: must be an object")
        if message.get("role") not in _ROLES:
            raise InvalidRequest(f"messages.{position}.role: must be one of {', '.join(_ROLES)}")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise InvalidRequest(f"messages.{position}.content: must be a string or a list")
    stop_sequences = request.get("stop_sequences")
    if stop_sequences is not None:
        # A bare string would otherwise be iterated into one stop sequence per character.
        if not isinstance(stop_sequences, list):
            raise InvalidRequest("stop_sequences: must be a list of strings")
        for position, sequence in enumerate(stop_sequences):
            if not isinstance(sequence, str):
                raise InvalidRequest(f"stop_sequences.{position}: must be a string")
    tools = request.get("tools")
    whole_key = toolset.list_json(tools)
    known = toolset.recall(whole_key)
    if known is not None:
        # A list seen lately: each of its tools passed the check then.
        _check_nesting(request, {**request, "tools": ()})
        return CheckedRequest(request, known)
    keys = tool_keys(tools)
    unchecked = [
        position
        for position, key in enumerate(keys)
        if key is None or not _WITHIN_NESTING.known(key)
    ]
    if len(unchecked) == len(keys):
        _check_nesting(request)
    else:
        # The same depths as the request itself: remembered tools left out of the walk.
        _check_nesting(request, {**request, "tools": [tools[p] for p in unchecked]})
    within = True
    for position in unchecked:
        key = keys[position]
        if key is not None and _json_within_nesting(key):
            _WITHIN_NESTING.remember(key, len(key), True)
        else:
            within = False
    if not isinstance(tools, list):
        return CheckedRequest(request, None)
    # Kept for the next turns only when every tool's JSON is known to pass (see
    # _json_within_nesting): a Python caller's tuples may pass here and not in JSON.
    return CheckedRequest(request, toolset.remember(whole_key if within else None, tools, keys))


def _json_within_nesting(tool_json: bytes) -> bool:
    """Whether the tool this JSON denotes passes the check where tools stand. The object just
    walked is that tool for parsed JSON; a Python caller's tuples or dict subclasses, which the
    walk does not enter, make it a different one, never remembered in its place."""
    try:
        _check_nesting({"tools": [orjson.loads(tool_json)]})
    except InvalidRequest:
        return False
    return True


def _check_nesting(request: dict, walked: dict | None = None) -> None:
    """Refuse bodies nested deeper than MAX_NESTING_DEPTH. Level by level, without Python
    recursion, and the children filtered in C: 0.2 ms for a 2 MB Claude Code history, 0.3 s
    for a million nested lists (a stack walk took 1.8 s). `walked`: what to walk instead of
    `request` (which the error message still names the path in)."""
    level: list[Any] = [request if walked is None else walked]
    for _ in range(MAX_NESTING_DEPTH):
        values, types = tee(chain.from_iterable(map(_values, level)))
        level = list(compress(values, map(_CONTAINERS.__contains__, map(type, types))))
        if not level:
            return
    raise InvalidRequest(
        f"{_too_deep_path(request)}: nested deeper than {MAX_NESTING_DEPTH} levels"
    )


def _values(container: Any) -> Iterable[Any]:
    return container.values() if isinstance(container, dict) else container


def _too_deep_path(request: dict) -> str:
    """Where the body first nests too deep, as `messages.1.content.0.input.a...` (clipped)."""
    path: list[object] = []
    stack: list[Iterator[tuple[object, Any]]] = [iter(request.items())]
    while len(stack) <= MAX_NESTING_DEPTH:
        for key, child in stack[-1]:
            if type(child) in _CONTAINERS:
                path.append(key)
                stack.append(iter(child.items() if isinstance(child, dict) else enumerate(child)))
                break
        else:
            stack.pop()
            path.pop()
    where = ".".join(str(part) for part in path)
    # Keys can be megabytes long; the error must not echo them.
    return where if len(where) <= _MAX_PATH_CHARS else where[:_MAX_PATH_CHARS] + "…"


def translate_request(
    request: Mapping | CheckedRequest,
    spec: ModelSpec,
    *,
    upstream_model: str,
) -> TranslatedRequest:
    """Build the upstream body; raises InvalidRequest for what no upstream could answer.

    A CheckedRequest (check_request's: the proxy checks before routing) is not checked again,
    and its tools list comes translated already (docs/architecture.md, "Caches")."""
    checked = request if isinstance(request, CheckedRequest) else check_request(request)
    request, tool_set = checked.request, checked.tools
    quirks = spec.quirks
    messages, prefill = split_prefill(request["messages"])

    # Tools map names first, so a tool's own name wins over a history call that maps alike.
    names: dict[str, str] = {}
    tools = offer_tools(request, quirks, names, tool_set.functions if tool_set else None)
    if tools.offered and not spec.tools:
        raise InvalidRequest(no_tools_message(request["model"], spec))

    estimated_input = estimate_tokens(request, tool_set.tally if tool_set else None)
    body: dict[str, Any] = {
        "model": upstream_model,
        "messages": upstream_messages(request.get("system"), messages, spec, names),
        "max_tokens": clamp_max_tokens(request["max_tokens"], spec, estimated_input),
    }
    body.update(tools.fields)
    thinking_fields, thinking_enabled = thinking_controls(request, quirks)
    body.update(thinking_fields)
    output_format = response_format(request)
    if output_format is not None:
        body["response_format"] = output_format
    stop_sequences = _sampling(request, quirks, body)

    context = ResponseContext(
        requested_model=request["model"],
        spec=spec,
        tool_name_map=dict(names),
        offered_tools=tools.offered,
        stop_sequences=stop_sequences,
        estimated_input_tokens=estimated_input,
        forced_tool=tools.forced,
        thinking_enabled=thinking_enabled,
        disable_parallel_tool_use=tools.disable_parallel,
        prefill=prefill,
        max_tokens=body["max_tokens"],
    )
    to_send = body if tools.encoded_tools is None else {**body, "tools": tools.encoded_tools}
    return TranslatedRequest(body=body, context=context, to_send=to_send)


def _sampling(request: Mapping, quirks: ModelQuirks, body: dict[str, Any]) -> tuple[str, ...]:
    """Add the sampling, stop and stream fields to `body`; returns the stop sequences sent."""
    temperature = request.get("temperature")
    if _is_number(temperature):
        body["temperature"] = temperature
    top_p = request.get("top_p")
    if _is_number(top_p):
        body["top_p"] = top_p
    top_k = request.get("top_k")
    if quirks.accepts_top_k and isinstance(top_k, int) and not isinstance(top_k, bool):
        body["top_k"] = top_k
    # validate_request checked the type; empty strings would stop nothing.
    stop_sequences = tuple(s for s in request.get("stop_sequences") or () if s)
    if stop_sequences:
        body["stop"] = list(stop_sequences)
    if request.get("stream") is True:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return stop_sequences


def clamp_max_tokens(requested: int, spec: ModelSpec, estimated_input: int) -> int:
    """Fit the output budget into the model's limits and what the prompt leaves of the window.

    Below MIN_REPLY_TOKENS of room (or what was asked, if less) the request is refused with
    Anthropic's overflow wording instead: a reply squeezed to a few tokens is useless, and
    only that wording makes Claude Code compact (docs/wire.md, "Context overflow")."""
    margin = CONTEXT_MARGIN_TOKENS + int(estimated_input * CONTEXT_MARGIN_FRACTION)
    room = spec.context_window - estimated_input - margin
    wanted = min(requested, spec.max_output_tokens)
    floor = min(wanted, MIN_REPLY_TOKENS)
    if room < floor:
        # The estimate never over-counts, so the prompt really leaves no room for a reply.
        limit = max(spec.context_window - margin - floor, 1)
        raise ContextOverflow(
            f"prompt is too long: {max(estimated_input, limit + 1)} tokens > {limit} maximum"
        )
    return max(1, min(wanted, room))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
