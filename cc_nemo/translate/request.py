"""Anthropic Messages request → OpenAI Chat Completions request (WIRE.md D.1, D.2)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, compress, tee
from typing import Any

from cc_nemo.settings.catalog import BUILTIN_MODELS, ModelQuirks, ModelSpec
from cc_nemo.translate.json_repair import compact_json
from cc_nemo.translate.names import upstream_tool_name
from cc_nemo.translate.schema import sanitize_schema, sanitize_tool_schema
from cc_nemo.translate.tokens import estimate_tokens

BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"
IMAGE_OMITTED = "[image omitted]"
IMAGE_ATTACHED = "[image attached below]"
NO_TOOL_OUTPUT = "(no output)"
NO_TOOL_RESULT = "(no result)"
# Head-room between the estimated prompt and the context window; grows with the prompt
# because the estimate's error does.
CONTEXT_MARGIN_TOKENS = 1024
CONTEXT_MARGIN_FRACTION = 0.05
# The smallest output budget worth sending: room for a compaction summary or a real answer.
MIN_REPLY_TOKENS = 4096

_EFFORT_ORDER = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_EFFORT_ALIASES = {"xhigh": "high", "max": "high"}
_ROLES = ("user", "assistant", "system")
# How deep a request body may nest. orjson encodes at most 255 levels and the upstream body
# wraps a tool schema one level deeper than the request does; past orjson, the JSON fallbacks
# are recursive. Real tool schemas and tool inputs stay far below this.
MAX_NESTING_DEPTH = 128
_MAX_PATH_CHARS = 200
# The exact types orjson parses into (subclasses only come from Python callers).
_CONTAINERS = frozenset({dict, list})


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


def validate_request(request: object, *, require_max_tokens: bool = True) -> dict:
    """Check the required fields so a bad body becomes a clear 400, never a crash
    (count_tokens bodies carry no max_tokens)."""
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
    _check_nesting(request)
    return request


def _check_nesting(request: dict) -> None:
    """Refuse bodies nested deeper than MAX_NESTING_DEPTH. Level by level, without Python
    recursion, and the children filtered in C: 0.2 ms for a 2 MB Claude Code history, 0.3 s
    for a million nested lists (a stack walk took 1.8 s)."""
    level: list[Any] = [request]
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
    request: Mapping, spec: ModelSpec, *, upstream_model: str
) -> TranslatedRequest:
    """Build the upstream body; raises InvalidRequest for what no upstream could answer."""
    request = validate_request(request)
    quirks = spec.quirks
    messages: list[dict] = request["messages"]

    prefill = ""
    if len(messages) > 1 and _is_prefill(messages[-1]):
        prefill = "\n\n".join(_texts(_blocks(messages[-1]["content"])))
        messages = messages[:-1]

    names: dict[str, str] = {}
    functions = _functions(request.get("tools"), names)
    choice = request.get("tool_choice")
    choice_kind = choice.get("type") if isinstance(choice, Mapping) else None
    if choice_kind == "none":
        functions = []
    if functions and not spec.tools:
        raise InvalidRequest(_no_tools_message(request["model"], spec))

    upstream_messages = _history(messages, spec, names)
    system = _system_text(request.get("system"))
    if system:
        upstream_messages.insert(0, {"role": "system", "content": system})

    estimated_input = estimate_tokens(request)
    body: dict[str, Any] = {
        "model": upstream_model,
        "messages": upstream_messages,
        "max_tokens": clamp_max_tokens(request["max_tokens"], spec, estimated_input),
    }

    forced_tool = False
    disable_parallel = bool(
        isinstance(choice, Mapping) and choice.get("disable_parallel_tool_use") is True
    )
    if functions:
        body["tools"] = functions
        tool_choice = _tool_choice(choice, quirks, {f["function"]["name"] for f in functions})
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
            forced_tool = choice_kind in ("any", "tool")
        if disable_parallel:
            body["parallel_tool_calls"] = False

    thinking_fields, thinking_enabled = _thinking_controls(request, quirks)
    body.update(thinking_fields)

    response_format = _response_format(request)
    if response_format is not None:
        body["response_format"] = response_format

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

    context = ResponseContext(
        requested_model=request["model"],
        spec=spec,
        tool_name_map=dict(names),
        offered_tools=tuple(names[f["function"]["name"]] for f in functions),
        stop_sequences=stop_sequences,
        estimated_input_tokens=estimated_input,
        forced_tool=forced_tool,
        thinking_enabled=thinking_enabled,
        disable_parallel_tool_use=disable_parallel,
        prefill=prefill,
        max_tokens=body["max_tokens"],
    )
    return TranslatedRequest(body=body, context=context)


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


# --- system -----------------------------------------------------------------------------


def _system_text(system: object) -> str:
    """Top-level system prompt minus the per-request billing line that defeats prefix caching."""
    if isinstance(system, str):
        lines = system.split("\n")
        return "\n".join(line for line in lines if not _is_billing(line)).strip()
    if isinstance(system, list):
        texts = [
            block["text"]
            for block in system
            if isinstance(block, Mapping)
            and isinstance(block.get("text"), str)
            and block["text"].strip()
            and not _is_billing(block["text"])
        ]
        return "\n\n".join(texts)
    return ""


def _is_billing(text: str) -> bool:
    return text.lstrip().startswith(BILLING_HEADER_PREFIX)


def _system_reminder(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("<system-reminder>"):
        return stripped
    return f"<system-reminder>\n{stripped}\n</system-reminder>"


# --- history ----------------------------------------------------------------------------


@dataclass
class _UserTurn:
    parts: list[dict] = field(default_factory=list)


@dataclass
class _AssistantTurn:
    texts: list[str] = field(default_factory=list)
    tool_calls: list[dict] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)


@dataclass
class _ToolTurn:
    call_id: str
    content: str


_Turn = _UserTurn | _AssistantTurn | _ToolTurn


def _history(messages: Sequence[Mapping], spec: ModelSpec, names: dict[str, str]) -> list[dict]:
    """D.2: walk the messages, keep tool messages right after their calls, repair, merge."""
    replay_reasoning = spec.quirks.history_reasoning_field is not None
    last_human = _last_human_turn(messages)
    turns: list[_Turn] = []
    for position, message in enumerate(messages):
        role = message["role"]
        blocks = _blocks(message["content"])
        if role == "system":
            text = "\n\n".join(_texts(blocks))
            if text.strip():
                turns.append(_UserTurn([_text_part(_system_reminder(text))]))
        elif role == "user":
            tool_turns, user = _user_turns(blocks, spec)
            turns.extend(tool_turns)
            if user.parts:
                turns.append(user)
        else:
            assistant = _assistant_turn(
                blocks, names, position, keep_reasoning=replay_reasoning and position > last_human
            )
            if not (assistant.texts or assistant.tool_calls):
                continue
            previous = turns[-1] if turns else None
            if isinstance(previous, _AssistantTurn):
                # Anthropic merges consecutive assistant turns; their calls are answered together.
                previous.texts.extend(assistant.texts)
                previous.tool_calls.extend(assistant.tool_calls)
                previous.reasoning.extend(assistant.reasoning)
            else:
                turns.append(assistant)
    return [_render(turn, spec) for turn in _merge_users(_pair_tool_results(turns))]


def _last_human_turn(messages: Sequence[Mapping]) -> int:
    """Index of the last user message a human wrote: where the current tool loop started.

    Tool results and the `<system-reminder>` texts Claude Code attaches to them do not count.
    """
    for position in range(len(messages) - 1, -1, -1):
        message = messages[position]
        if message["role"] == "user" and any(
            _is_human_block(block) for block in _blocks(message["content"])
        ):
            return position
    return -1


def _is_human_block(block: Mapping) -> bool:
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return isinstance(text, str) and not text.lstrip().startswith("<system-reminder>")
    return kind not in ("tool_result", "mid_conv_system", None)


def _user_turns(blocks: list[Mapping], spec: ModelSpec) -> tuple[list[_ToolTurn], _UserTurn]:
    tool_turns: list[_ToolTurn] = []
    user = _UserTurn()
    queued_images: list[dict] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str) and text:
                user.parts.append(_text_part(text))
        elif kind == "tool_result":
            content, images = _tool_result_content(block, spec)
            tool_turns.append(_ToolTurn(str(block.get("tool_use_id") or ""), content))
            queued_images.extend(images)
        elif kind == "image":
            user.parts.append(_image_part(block, spec))
        elif kind == "mid_conv_system":
            text = "\n\n".join(_texts(_blocks(block.get("content"))))
            if text.strip():
                user.parts.append(_text_part(_system_reminder(text)))
        else:
            text = _rendered_text(block)
            if text:
                user.parts.append(_text_part(text))
    user.parts.extend(queued_images)
    return tool_turns, user


def _tool_result_content(block: Mapping, spec: ModelSpec) -> tuple[str, list[dict]]:
    """Tool messages carry text only (B.1): images become a pointer to the user message."""
    content = block.get("content")
    images: list[dict] = []
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        pieces: list[str] = []
        for item in _blocks(content):
            if item.get("type") == "image":
                if spec.vision and _image_url(item):
                    pieces.append(IMAGE_ATTACHED)
                    images.append(_image_part(item, spec))
                else:
                    pieces.append(IMAGE_OMITTED)
            else:
                rendered = _rendered_text(item)
                if rendered:
                    pieces.append(rendered)
        text = "\n".join(pieces)
    else:
        text = ""
    if not text.strip():
        text = NO_TOOL_OUTPUT
    if block.get("is_error") is True:
        text = "Error: " + text
    return text, images


def _rendered_text(block: Mapping) -> str:
    """Text for the block kinds that carry readable content; "" for everything else."""
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return text if isinstance(text, str) else ""
    if kind == "tool_reference":
        return f"[tool loaded: {block.get('tool_name') or block.get('name') or 'unknown'}]"
    if kind == "search_result":
        header = " — ".join(
            str(block[key]) for key in ("title", "source") if isinstance(block.get(key), str)
        )
        body = "\n".join(_texts(_blocks(block.get("content"))))
        return "\n".join(piece for piece in (header, body) if piece)
    if kind == "document":
        return _document_text(block)
    return ""


def _document_text(block: Mapping) -> str:
    source = block.get("source")
    title = block.get("title") if isinstance(block.get("title"), str) else None
    body = ""
    if isinstance(source, Mapping):
        if source.get("type") == "text" and isinstance(source.get("data"), str):
            body = source["data"]
        elif source.get("type") == "content":
            body = "\n".join(_texts(_blocks(source.get("content"))))
        elif source.get("type") == "url" and isinstance(source.get("url"), str):
            body = f"[document: {source['url']}]"
        else:
            body = "[document omitted: this model cannot read PDF attachments]"
    header = f"Document: {title}" if title else ""
    return "\n".join(piece for piece in (header, body) if piece)


def _assistant_turn(
    blocks: list[Mapping], names: dict[str, str], position: int, *, keep_reasoning: bool
) -> _AssistantTurn:
    turn = _AssistantTurn()
    for index, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str) and text.strip():
                turn.texts.append(text)
        elif kind == "tool_use":
            name = block.get("name")
            if not isinstance(name, str) or not name:
                continue
            call_id = block.get("id")
            if not isinstance(call_id, str) or not call_id:
                call_id = f"call_{position}_{index}"
            arguments = block.get("input")
            turn.tool_calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": _map_name(name, names),
                        "arguments": compact_json(arguments if isinstance(arguments, dict) else {}),
                    },
                }
            )
        elif kind == "thinking" and keep_reasoning:
            thinking = block.get("thinking")
            if isinstance(thinking, str) and thinking.strip():
                turn.reasoning.append(thinking)
    return turn


def _pair_tool_results(turns: list[_Turn]) -> list[_Turn]:
    """Every tool call gets exactly one tool message right after its assistant turn (D.2 #5)."""
    out: list[_Turn] = []
    unanswered: list[str] = []
    deferred: list[_UserTurn] = []

    def close_open_calls() -> None:
        out.extend(_ToolTurn(call_id, NO_TOOL_RESULT) for call_id in unanswered)
        unanswered.clear()
        out.extend(deferred)
        deferred.clear()

    for turn in turns:
        if isinstance(turn, _AssistantTurn):
            close_open_calls()
            out.append(turn)
            unanswered.extend(call["id"] for call in turn.tool_calls)
        elif isinstance(turn, _ToolTurn):
            if turn.call_id in unanswered:
                unanswered.remove(turn.call_id)
                out.append(turn)
            else:
                orphan = _UserTurn(
                    [_text_part(f"[tool result for {turn.call_id}]: {turn.content}")]
                )
                (deferred if unanswered else out).append(orphan)
        elif unanswered:
            deferred.append(turn)
        else:
            out.append(turn)
    close_open_calls()
    return out


def _merge_users(turns: list[_Turn]) -> Iterator[_Turn]:
    """Strict-alternation templates (Gemma, Mistral, Llama) reject consecutive user turns."""
    previous: _Turn | None = None
    for turn in turns:
        if isinstance(turn, _UserTurn) and isinstance(previous, _UserTurn):
            previous.parts.extend(turn.parts)
            continue
        if previous is not None:
            yield previous
        previous = turn
    if previous is not None:
        yield previous


def _render(turn: _Turn, spec: ModelSpec) -> dict:
    if isinstance(turn, _ToolTurn):
        return {"role": "tool", "tool_call_id": turn.call_id, "content": turn.content}
    if isinstance(turn, _UserTurn):
        if all(part["type"] == "text" for part in turn.parts):
            return {"role": "user", "content": "\n\n".join(p["text"] for p in turn.parts)}
        return {"role": "user", "content": turn.parts}
    message: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(turn.texts)}
    if turn.tool_calls:
        message["tool_calls"] = turn.tool_calls
    reasoning_field = spec.quirks.history_reasoning_field
    if reasoning_field and turn.reasoning:
        message[reasoning_field] = "\n\n".join(turn.reasoning)
    return message


# --- blocks -----------------------------------------------------------------------------


def _blocks(content: object) -> list[Mapping]:
    """A string content equals one text block; non-object items are dropped."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [
            {"type": "text", "text": item} if isinstance(item, str) else item
            for item in content
            if isinstance(item, Mapping | str)
        ]
    return []


def _texts(blocks: list[Mapping]) -> list[str]:
    return [
        block["text"]
        for block in blocks
        if block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"]
    ]


def _is_prefill(message: Mapping) -> bool:
    if message["role"] != "assistant":
        return False
    return not any(block.get("type") == "tool_use" for block in _blocks(message["content"]))


def _text_part(text: str) -> dict:
    return {"type": "text", "text": text}


def _image_url(block: Mapping) -> str | None:
    source = block.get("source")
    if not isinstance(source, Mapping):
        return None
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        media_type = source.get("media_type") or "image/png"
        return f"data:{media_type};base64,{source['data']}"
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return source["url"]
    return None


def _image_part(block: Mapping, spec: ModelSpec) -> dict:
    url = _image_url(block) if spec.vision else None
    if url is None:
        return _text_part(IMAGE_OMITTED)
    return {"type": "image_url", "image_url": {"url": url}}


# --- tools ------------------------------------------------------------------------------


def _map_name(name: str, names: dict[str, str]) -> str:
    upstream = upstream_tool_name(name)
    names.setdefault(upstream, name)
    return upstream


def _functions(tools: object, names: dict[str, str]) -> list[dict]:
    """Custom tools as OpenAI functions; Anthropic server tools cannot run upstream: dropped."""
    if not isinstance(tools, list):
        return []
    functions: list[dict] = []
    seen: set[str] = set()
    for tool in tools:
        if not isinstance(tool, Mapping) or tool.get("type") not in (None, "custom"):
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            continue
        upstream = _map_name(name, names)
        if upstream in seen:
            continue
        seen.add(upstream)
        function: dict[str, Any] = {"name": upstream}
        description = tool.get("description")
        if isinstance(description, str) and description.strip():
            function["description"] = description
        function["parameters"] = sanitize_tool_schema(tool.get("input_schema"))
        functions.append({"type": "function", "function": function})
    return functions


def _tool_choice(choice: object, quirks: ModelQuirks, offered: set[str]) -> object | None:
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
        if upstream in offered:
            return {"type": "function", "function": {"name": upstream}}
        return quirks.tool_choice_any
    return None


def _no_tools_message(requested_model: str, spec: ModelSpec) -> str:
    suggestions = [m.alias for m in BUILTIN_MODELS if m.tools and m.context_window >= 100_000][:4]
    return (
        f"model {requested_model!r} is served by {spec.model}, which does not support tool use, "
        f"and this request offers tools; choose a tool-capable model such as "
        f"{', '.join(suggestions)}"
    )


# --- reasoning, output format -----------------------------------------------------------


def _thinking_controls(request: Mapping, quirks: ModelQuirks) -> tuple[dict[str, Any], bool]:
    """Per-model reasoning switch/effort (C.6); only values the model is known to accept."""
    wanted, level = _requested_reasoning(request)
    fields: dict[str, Any] = {}
    levels = quirks.effort_levels
    if wanted is True:
        if quirks.thinking_switch:
            fields["chat_template_kwargs"] = {quirks.thinking_switch: True}
        effort = _nearest_effort(level, [lvl for lvl in levels if lvl != "none"])
        if effort:
            fields["reasoning_effort"] = effort
    elif wanted is False:
        if quirks.thinking_switch:
            fields["chat_template_kwargs"] = {quirks.thinking_switch: False}
        if "none" in levels:
            fields["reasoning_effort"] = "none"
    else:
        effort = _nearest_effort(level, [lvl for lvl in levels if lvl != "none"])
        if effort:
            fields["reasoning_effort"] = effort
    enabled = wanted if wanted is not None else quirks.thinks_by_default
    return fields, enabled


def _requested_reasoning(request: Mapping) -> tuple[bool | None, str | None]:
    """(thinking on/off/unspecified, effort level) from `thinking` and `output_config.effort`."""
    output_config = request.get("output_config")
    effort = output_config.get("effort") if isinstance(output_config, Mapping) else None
    level = _EFFORT_ALIASES.get(effort, effort) if effort in _EFFORT_ORDER else None
    if level == "none":
        level = None
    thinking = request.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, Mapping) else None
    if kind == "disabled":
        return False, None
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if level is None and isinstance(budget, int) and not isinstance(budget, bool):
            level = "low" if budget < 4000 else "medium" if budget < 16000 else "high"
        return True, level
    if kind == "adaptive":
        return True, level
    return None, level


def _nearest_effort(level: str | None, allowed: list[str]) -> str | None:
    if level is None or not allowed:
        return None
    if level in allowed:
        return level
    rank = _rank(level)
    # Ties go to the stronger level: under-thinking hurts more than over-thinking here.
    return min(allowed, key=lambda lvl: (abs(_rank(lvl) - rank), -_rank(lvl)))


def _rank(level: str) -> int:
    return _EFFORT_ORDER.index(level) if level in _EFFORT_ORDER else 0


def _response_format(request: Mapping) -> dict | None:
    output_config = request.get("output_config")
    fmt = output_config.get("format") if isinstance(output_config, Mapping) else None
    if fmt is None:
        fmt = request.get("output_format")
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        return None
    schema = fmt.get("schema")
    if not isinstance(schema, Mapping):
        return None
    return {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": sanitize_schema(schema)},
    }


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
