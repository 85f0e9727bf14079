"""Tool-call arguments to a JSON object, whatever shape the model produced (WIRE.md D.3 #3)."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def parse_arguments(arguments: object) -> tuple[dict[str, Any], bool]:
    """Arguments as an object, and whether they were usable (False means `{"_raw": ...}`)."""
    if isinstance(arguments, dict):
        return arguments, True
    if arguments is None:
        return {}, True
    if not isinstance(arguments, str):
        return _as_object(arguments), True
    text = arguments.strip()
    if not text:
        return {}, True
    try:
        return _as_object(orjson.loads(text)), True
    except orjson.JSONDecodeError:
        pass
    repaired = repair_json(text)
    if repaired is not None:
        return _as_object(repaired), True
    return {"_raw": arguments}, False


def repair_json(text: str) -> Any | None:
    """Best effort for what models get wrong: code fences, trailing commas, a cut-off tail."""
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    candidates = [text]
    without_commas = _TRAILING_COMMA.sub(r"\1", text)
    candidates.append(without_commas)
    closed = _close_unbalanced(without_commas)
    if closed is not None:
        candidates.append(closed)
        candidates.append(_TRAILING_COMMA.sub(r"\1", closed))
    for candidate in candidates:
        try:
            return orjson.loads(candidate)
        except orjson.JSONDecodeError:
            continue
    # Python's parser also accepts NaN/Infinity, which some models emit.
    try:
        return json.loads(without_commas)
    except ValueError:
        return None


def compact_json(value: Any) -> str:
    """Compact JSON keeping non-ASCII as is (what json.dumps(ensure_ascii=False) would give)."""
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"value": value}


def _close_unbalanced(text: str) -> str | None:
    """Close an unterminated string and any open brackets, as when a reply hit max_tokens."""
    stack: list[str] = []
    in_string = False
    escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]" and (not stack or stack.pop() != char):
            return None
    if not stack and not in_string:
        return None
    tail = text
    if in_string:
        if escaped:
            tail = tail[:-1]
        tail += '"'
    tail = tail.rstrip()
    if tail.endswith(","):
        tail = tail[:-1]
    elif tail.endswith(":"):
        tail += "null"
    return tail + "".join(reversed(stack))
