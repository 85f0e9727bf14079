"""Tool-call arguments to a JSON object, whatever shape the model produced (docs/wire.md, "Response translation")."""

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
    # Python's parser also accepts NaN/Infinity, which some models emit. It recurses, so
    # text nested about 1 000 deep is no JSON we can use either.
    try:
        return json.loads(without_commas)
    except (ValueError, RecursionError):
        return None


def compact_json(value: Any) -> str:
    """Compact JSON keeping non-ASCII as is (what json.dumps(ensure_ascii=False) would give)."""
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:
        # Beyond 64-bit integers, or nested past orjson's 255 levels (a model's arguments may
        # nest up to the 1 024 orjson parses): json.dumps recurses, so that runs out too.
        return _iterative_json(value)


class _Literal(str):
    """Ready JSON text on _iterative_json's work stack."""

    __slots__ = ()


def _iterative_json(value: Any) -> str:
    """compact_json without recursion: containers opened on an explicit stack, scalars by
    json.dumps (which takes integers of any size)."""
    out: list[str] = []
    todo: list[Any] = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, _Literal):
            out.append(item)
        elif isinstance(item, dict):
            out.append("{")
            todo.append(_Literal("}"))
            pairs = list(item.items())
            for index in range(len(pairs) - 1, -1, -1):
                key, child = pairs[index]
                todo.append(child)
                todo.append(_Literal(("," if index else "") + _scalar_json(str(key)) + ":"))
        elif isinstance(item, list | tuple):
            out.append("[")
            todo.append(_Literal("]"))
            for index in range(len(item) - 1, -1, -1):
                todo.append(item[index])
                if index:
                    todo.append(_Literal(","))
        else:
            out.append(_scalar_json(item))
    return "".join(out)


def _scalar_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


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
