"""The conversation as OpenAI messages: system prompt, turns, tool-call repairs, content blocks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cc_nemo.settings.catalog import ModelSpec
from cc_nemo.translate.json_repair import compact_json
from cc_nemo.translate.tools import map_name

BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"
IMAGE_OMITTED = "[image omitted]"
IMAGE_ATTACHED = "[image attached below]"
NO_TOOL_OUTPUT = "(no output)"
NO_TOOL_RESULT = "(no result)"


def split_prefill(messages: list[dict]) -> tuple[list[dict], str]:
    """A final assistant message without tool_use is a prefill: removed, its text starts the
    reply (vLLM's `continue_final_message` is not relied on)."""
    if len(messages) > 1 and _is_prefill(messages[-1]):
        return messages[:-1], "\n\n".join(_block_texts(_content_blocks(messages[-1]["content"])))
    return messages, ""


def _is_prefill(message: Mapping) -> bool:
    if message["role"] != "assistant":
        return False
    return not any(block.get("type") == "tool_use" for block in _content_blocks(message["content"]))


def upstream_messages(
    system: object, messages: Sequence[Mapping], spec: ModelSpec, names: dict[str, str]
) -> list[dict]:
    """The system prompt as one leading system message, then the history; `names` collects the
    upstream tool names the history's calls use."""
    history = _history(messages, spec, names)
    text = _system_text(system)
    if text:
        history.insert(0, {"role": "system", "content": text})
    return history


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


# --- turns ------------------------------------------------------------------------------


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
    """Walk the messages, keep tool messages right after their calls, repair, merge
    (docs/wire.md, "Request translation", History)."""
    replay_reasoning = spec.quirks.history_reasoning_field is not None
    last_human = _last_human_turn(messages)
    turns: list[_Turn] = []
    for position, message in enumerate(messages):
        role = message["role"]
        blocks = _content_blocks(message["content"])
        if role == "system":
            text = "\n\n".join(_block_texts(blocks))
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
            _is_human_block(block) for block in _content_blocks(message["content"])
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
            text = "\n\n".join(_block_texts(_content_blocks(block.get("content"))))
            if text.strip():
                user.parts.append(_text_part(_system_reminder(text)))
        else:
            text = _rendered_text(block)
            if text:
                user.parts.append(_text_part(text))
    user.parts.extend(queued_images)
    return tool_turns, user


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
                        "name": map_name(name, names),
                        "arguments": compact_json(arguments if isinstance(arguments, dict) else {}),
                    },
                }
            )
        elif kind == "thinking" and keep_reasoning:
            thinking = block.get("thinking")
            if isinstance(thinking, str) and thinking.strip():
                turn.reasoning.append(thinking)
    return turn


# --- repairs, rendering ------------------------------------------------------------------


def _pair_tool_results(turns: list[_Turn]) -> list[_Turn]:
    """Every tool call gets exactly one tool message right after its assistant turn, or the
    upstream answers a 400 about tool_call_id (docs/wire.md, "Request translation", History 4)."""
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


# --- content blocks ---------------------------------------------------------------------


def _content_blocks(content: object) -> list[Mapping]:
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


def _block_texts(blocks: list[Mapping]) -> list[str]:
    return [
        block["text"]
        for block in blocks
        if block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"]
    ]


def _text_part(text: str) -> dict:
    return {"type": "text", "text": text}


def _image_part(block: Mapping, spec: ModelSpec) -> dict:
    """An `image_url` part, or a placeholder text for models without vision."""
    url = _image_url(block) if spec.vision else None
    if url is None:
        return _text_part(IMAGE_OMITTED)
    return {"type": "image_url", "image_url": {"url": url}}


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


def _tool_result_content(block: Mapping, spec: ModelSpec) -> tuple[str, list[dict]]:
    """Tool messages carry text only (docs/wire.md, "Request translation", History 2): images
    become a pointer to the user message, and are returned to go there."""
    content = block.get("content")
    images: list[dict] = []
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        pieces: list[str] = []
        for item in _content_blocks(content):
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
        body = "\n".join(_block_texts(_content_blocks(block.get("content"))))
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
            body = "\n".join(_block_texts(_content_blocks(source.get("content"))))
        elif source.get("type") == "url" and isinstance(source.get("url"), str):
            body = f"[document: {source['url']}]"
        else:
            body = "[document omitted: this model cannot read PDF attachments]"
    header = f"Document: {title}" if title else ""
    return "\n".join(piece for piece in (header, body) if piece)
