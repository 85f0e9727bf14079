"""Tool-call arguments to a JSON object, whatever shape the model produced (docs/wire.md,
"Response translation"), and the incremental form of the same rules that lets arguments stream
(docs/wire.md, "The stream state machine": how tool-call arguments stream).

`parse_arguments` and `ObjectPrefix` agree by construction: every repair the streaming side
makes as text arrives (dropping a trailing comma, closing what a cut-off left open, NaN and
raw control characters, the first complete object winning over trailing text) is one the
whole-text repair makes too, so what was streamed is a prefix of what the buffered path gives.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
# What a trailing-comma repair needs to see: strings (skipped whole, so a ",}" inside one is
# left alone) and a comma before a closer.
_STRING_OR_TRAILING_COMMA = re.compile(r'"(?:[^"\\]|\\.)*"?|,(\s*[}\]])', re.DOTALL)
_INT64_MIN = -(2**63)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_UINT64_MAX = 2**64 - 1


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
    repaired = repair_json(text, lenient=True)
    if repaired is not None:
        return _as_object(repaired), True
    return {"_raw": arguments}, False


def repair_json(text: str, *, lenient: bool = False) -> Any | None:
    """Best effort for what models get wrong: code fences, trailing commas, a cut-off tail,
    NaN/Infinity. `lenient` (tool arguments, not leaked-call salvage) also takes raw control
    characters inside strings and, when text follows a complete object (whole arguments
    repeated, a stray token), the first object: the streamed form cannot take those back."""
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    candidates = [text]
    without_commas = _drop_trailing_commas(text)
    candidates.append(without_commas)
    closed = _close_unbalanced(without_commas)
    if closed is not None:
        candidates.append(closed)
        candidates.append(_drop_trailing_commas(closed))
    for candidate in candidates:
        try:
            return orjson.loads(candidate)
        except orjson.JSONDecodeError:
            continue
    # Python's parser also accepts NaN/Infinity, which some models emit. It recurses, so
    # text nested about 1 000 deep is no JSON we can use either.
    decoder = json.JSONDecoder(strict=not lenient, parse_int=_orjson_int)
    for candidate in candidates[1:] if lenient else candidates[1:2]:
        try:
            return decoder.decode(candidate)
        except (ValueError, RecursionError):
            continue
    if lenient and without_commas.startswith("{"):
        try:
            first, _ = decoder.raw_decode(without_commas)
        except (ValueError, RecursionError):
            return None
        return first
    return None


def _drop_trailing_commas(text: str) -> str:
    """`,` before `}` or `]` removed, outside strings only (a regex over the whole text would
    also rewrite a string value such as "f(a,)")."""
    return _STRING_OR_TRAILING_COMMA.sub(lambda m: m.group(1) or m.group(0), text)


def _orjson_int(text: str) -> int | float:
    """Integers as orjson reads them, so both parsers give the same value: beyond 64 bits, a
    float."""
    value = int(text)
    return value if _INT64_MIN <= value <= _UINT64_MAX else float(value)


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
    if isinstance(value, float) and not math.isfinite(value):
        return "null"  # as orjson writes them: JSON has no NaN or Infinity
    if isinstance(value, str):
        # A lone surrogate (from a "\ud800" escape) cannot be encoded as UTF-8 on the wire.
        value = _LONE_SURROGATE.sub("\ufffd", value)
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


# --- Streaming: the part of the normalised object no later text can change ------------------

_BEFORE, _KEY, _IN_KEY, _COLON, _VALUE, _IN_STRING, _IN_TOKEN, _AFTER_VALUE = range(8)
# Terminal states, compared with >=: the top-level object closed; the text is not an object
# (repaired whole at the end); the text stopped being JSON.
_DONE, _HELD, _BROKEN = 8, 9, 10

_JSON_SPACE = frozenset(" \t\n\r")
_TOKEN_END = frozenset(",}] \t\n\r")
_TOKEN_START = frozenset("-0123456789tfnNI")
_PLAIN_RUN = re.compile(r'[^"\\\x00-\x1f]+')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_SIMPLE_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "/",
    "b": "\\b",
    "f": "\\f",
    "n": "\\n",
    "r": "\\r",
    "t": "\\t",
}
# How orjson writes each control character (\n, \t… or \u00XX).
_CONTROL = tuple(orjson.dumps(chr(code)).decode()[1:-1] for code in range(32))
_REPLACEMENT = "\ufffd"


class ObjectPrefix:
    """Raw argument text in, as it arrives; out, the compact JSON `parse_arguments` would give
    for the whole text, as far as no later text and no repair can change it.

    Held back: a separator until what follows it (so a trailing comma can be dropped), a key
    until its colon (a cut-off key leaves the text past repair), a number or literal until it
    ends, a partial escape or surrogate pair, and whitespace at the end of a string until
    more of the string comes (the whole text is stripped, so a cut there loses it). Text that does not start with `{` is never
    streamed (`held`: a fence, a list or a scalar is repaired whole at the end). Text that
    stops being a JSON object (`broken`) freezes the output where it is; `closing` and
    `invalidating_tail` then finish it (docs/wire.md, "How tool-call arguments stream").
    """

    def __init__(self) -> None:
        self._state = _BEFORE
        self._closers: list[str] = []  # of the containers already written, innermost last
        self._out: list[str] = []  # written, not yet taken
        self._comma = False  # a comma read but not written
        self._key: list[str] = []
        self._token: list[str] = []
        self._escape = ""  # a partial escape inside a string
        self._high: int | None = None  # a high surrogate waiting for its low half
        self._spaces = ""  # raw whitespace at the end of the string read so far
        self._string_open = False  # a value string's opening quote was written
        self._value_pending = False  # `"key":` written, its value not yet
        # The last top-level key written (as JSON), for invalidating_tail.
        self.last_top_key: str | None = None

    @property
    def done(self) -> bool:
        """The top-level object closed: nothing after it can change the output."""
        return self._state == _DONE

    @property
    def streamable(self) -> bool:
        """Not known to be anything but a JSON object (yet): worth starting a block for."""
        return self._state < _HELD

    def take(self) -> str:
        """What was written since the last take."""
        out = "".join(self._out)
        self._out = []
        return out

    def feed(self, text: str) -> None:
        index, end = 0, len(text)
        while index < end:
            state = self._state
            if state in (_IN_STRING, _IN_KEY):
                index = self._string(text, index)
                continue
            if state >= _DONE:
                return
            char = text[index]
            if state == _IN_TOKEN:
                if char not in _TOKEN_END:
                    self._token.append(char)
                    index += 1
                elif not self._end_token():
                    return
                continue  # the delimiter is read again, after the value
            index += 1
            if char in _JSON_SPACE:
                continue
            if state == _BEFORE:
                if char == "{":
                    self._open("{", "}")
                elif not char.isspace():  # parse_arguments strips any Unicode space
                    self._state = _HELD
            elif state == _KEY:
                if char == '"':
                    self._key = ['"']
                    self._state = _IN_KEY
                elif char == "}":
                    self._close(char)  # empty object, or a trailing comma dropped
                else:
                    self._state = _BROKEN
            elif state == _COLON:
                if char == ":":
                    key = "".join(self._key)
                    self._out.append("," + key + ":" if self._comma else key + ":")
                    self._comma = False
                    self._value_pending = True
                    if len(self._closers) == 1:
                        self.last_top_key = key
                    self._state = _VALUE
                else:
                    self._state = _BROKEN
            elif state == _VALUE:
                self._value(char)
            elif char == ",":  # _AFTER_VALUE
                self._comma = True
                self._state = _KEY if self._closers[-1] == "}" else _VALUE
            elif char in "}]":
                self._close(char)
            else:
                self._state = _BROKEN

    def closing(self, keep: int = 0) -> str:
        """Text that makes what was written valid JSON: the open string or the missing value,
        then the closers of all containers but the outer `keep`."""
        head = '"' if self._string_open else "null" if self._value_pending else ""
        return head + "".join(reversed(self._closers[keep:]))

    def invalidating_tail(self, raw: str) -> str:
        """Valid JSON after what was written, for arguments past repair: the last top-level
        key again, now `{"_raw": <the text>}`. Parsers keep a repeated key's last value, so the
        call carries the raw text where a value was and a tool's schema refuses it, as it
        refuses the buffered path's `{"_raw": ...}`."""
        marker = compact_json({"_raw": raw})
        if self.last_top_key is None:  # only "{" was written
            return self.closing(1) + marker[1:]
        return self.closing(1) + "," + self.last_top_key + ":" + marker + "}"

    def _value(self, char: str) -> None:
        if char == "{":
            self._open("{", "}")
        elif char == "[":
            self._open("[", "]")
        elif char == '"':
            self._write_value('"')
            self._string_open = True
            self._state = _IN_STRING
        elif char == "]" and self._closers[-1] == "]":
            self._close(char)  # empty list, or a trailing comma dropped
        elif char in _TOKEN_START:
            self._token = [char]
            self._state = _IN_TOKEN
        else:
            self._state = _BROKEN

    def _write_value(self, text: str) -> None:
        self._out.append("," + text if self._comma else text)
        self._comma = False
        self._value_pending = False

    def _open(self, char: str, closer: str) -> None:
        self._write_value(char)
        self._closers.append(closer)
        self._state = _KEY if char == "{" else _VALUE

    def _close(self, char: str) -> None:
        if not self._closers or self._closers[-1] != char:
            self._state = _BROKEN
            return
        self._closers.pop()
        self._out.append(char)
        self._comma = False
        self._state = _AFTER_VALUE if self._closers else _DONE

    def _end_token(self) -> bool:
        scalar = _scalar_text("".join(self._token))
        self._token = []
        if scalar is None:
            self._state = _BROKEN
            return False
        self._write_value(scalar)
        self._state = _AFTER_VALUE
        return True

    def _string(self, text: str, index: int) -> int:
        """Read string characters from `index`; returns where reading stopped."""
        in_key = self._state == _IN_KEY
        target = self._key if in_key else self._out
        end = len(text)
        while index < end:
            if self._escape:
                self._escape += text[index]
                index += 1
                if not self._read_escape(target):
                    return end
                continue
            run = _PLAIN_RUN.match(text, index)
            if run is not None:
                index = run.end()
                plain = run.group()
                kept = plain.rstrip()
                if kept:
                    self._write_string(target, kept)
                self._spaces += plain[len(kept) :]
                continue
            char = text[index]
            index += 1
            if char == "\\":
                self._escape = char
                continue
            if char == '"':
                self._write_string(target, '"')
                if in_key:
                    self._state = _COLON
                else:
                    self._string_open = False
                    self._state = _AFTER_VALUE
                return index
            # A raw control character: Python's lenient parser takes it, written escaped.
            if char.isspace():
                self._spaces += char
            else:
                self._write_string(target, _CONTROL[ord(char)])
        return index

    def _write_string(self, target: list[str], text: str) -> None:
        """String output, after what was held for it: a lone high surrogate, whitespace."""
        self._flush_high(target)
        if self._spaces:
            target.append("".join(_encode_char(char) for char in self._spaces))
            self._spaces = ""
        target.append(text)

    def _read_escape(self, target: list[str]) -> bool:
        """Decode a complete escape into `target`; False (and broken) for an invalid one."""
        escape = self._escape
        if escape[1] != "u":
            replacement = _SIMPLE_ESCAPES.get(escape[1])
            self._escape = ""
            if replacement is None:
                self._state = _BROKEN
                return False
            self._write_string(target, replacement)
            return True
        if len(escape) < 6:
            return True
        self._escape = ""
        if not _HEX4.fullmatch(escape, 2):
            self._state = _BROKEN
            return False
        code = int(escape[2:], 16)
        if 0xD800 <= code < 0xDC00:
            self._write_string(target, "")
            self._high = code
        elif 0xDC00 <= code < 0xE000:
            if self._high is None:
                self._write_string(target, _REPLACEMENT)
            else:
                pair = chr(0x10000 + ((self._high - 0xD800) << 10) + (code - 0xDC00))
                self._high = None
                self._write_string(target, pair)
        else:
            self._write_string(target, _encode_char(chr(code)))
        return True

    def _flush_high(self, target: list[str]) -> None:
        """A high surrogate with no low half after it: written as compact_json writes it."""
        if self._high is not None:
            target.append(_REPLACEMENT)
            self._high = None


def _encode_char(char: str) -> str:
    """One decoded character as orjson writes it inside a string."""
    if char == '"':
        return '\\"'
    if char == "\\":
        return "\\\\"
    if char < " ":
        return _CONTROL[ord(char)]
    return char


def _scalar_text(token: str) -> str | None:
    """A number or literal as compact_json writes the parsed value; None if it is neither."""
    if token in ("true", "false", "null"):
        return token
    if token in ("NaN", "Infinity", "-Infinity"):
        return "null"  # Python's parser reads them; orjson writes them as null
    if _NUMBER.fullmatch(token) is None:
        return None
    try:
        return compact_json(orjson.loads(token))
    except orjson.JSONDecodeError:
        return "null"  # beyond a double: Python's parser reads infinity, written as null
