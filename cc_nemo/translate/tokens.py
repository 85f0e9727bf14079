"""Local input-token estimate: count_tokens answers and max_tokens clamping (Workers AI has no tokenizer).

A linear model over character classes, fitted against two real tokenizers (OpenAI o200k_base
via the `bpe-openai` package, and Claude's published legacy tokenizer shipped in
`anthropic==0.37.1`) on Claude Code's own request text (captured from the 2.1.330 client),
Python source, `cat -n` Read results, this project's design docs and man pages:

    tokens = 0.22 * (letters + whitespace) + 0.9 * digits + 0.45 * punctuation
             + 1.0 * non-ASCII characters, + 1600 per image, + small per-message overheads

| corpus                                   | chars   | o200k  | Claude | estimate | /o200k | /Claude |
| ---------------------------------------- | ------- | ------ | ------ | -------- | ------ | ------- |
| Claude Code system prompt (prose)        | 7,090   | 1,529  | 1,645  | 1,672    | 1.09   | 1.02    |
| Claude Code tool descriptions            | 39,323  | 9,096  | 9,505  | 9,483    | 1.04   | 1.00    |
| Claude Code tool schemas (compact JSON)  | 19,046  | 4,386  | 4,520  | 5,198    | 1.19   | 1.15    |
| Claude Code environment message          | 8,829   | 2,034  | 2,147  | 2,117    | 1.04   | 0.99    |
| design docs (markdown, some Unicode)     | 113,560 | 32,960 | 35,720 | 31,968   | 0.97   | 0.89    |
| Read result, 500 numeric-heavy lines     | 32,978  | 13,502 | 13,174 | 13,265   | 0.98   | 1.01    |
| Python source (aiohttp)                  | 257,671 | 55,377 | 58,065 | 63,331   | 1.14   | 1.09    |
| Read result, 500 lines of aiohttp        | 20,080  | 5,591  | 5,233  | 5,858    | 1.05   | 1.12    |
| Chinese man pages                        | 19,868  | 7,707  | 8,748  | 6,922    | 0.90   | 0.79    |
| German man pages                         | 50,878  | 15,202 | 18,191 | 12,869   | 0.85   | 0.71    |
| Japanese man pages                       | 30,950  | 17,598 | 22,309 | 20,780   | 1.18   | 0.93    |

So English prose/code/JSON lands at about 4.0-4.6 characters per token and within 20% of
both tokenizers; a plain characters/4 rule is 40% low on number-heavy `cat -n` output. Claude
Code refuses a Read result above 25,000 counted tokens, so the estimate must never run far
high: a 40 KB 500-line `cat -n` file comes out near 12,000. Counting works on bytes with
`bytes.translate` so a 2 MB request costs a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from cc_nemo.translate import memo
from cc_nemo.translate.memo import BoundedMemo

LETTER_AND_SPACE_TOKENS = 0.22
DIGIT_TOKENS = 0.9
PUNCTUATION_TOKENS = 0.45
NON_ASCII_TOKENS = 1.0
IMAGE_TOKENS = 1600
MESSAGE_OVERHEAD_TOKENS = 4
TOOL_OVERHEAD_TOKENS = 8
REQUEST_OVERHEAD_TOKENS = 3

_LETTERS_AND_SPACE = bytes(range(65, 91)) + bytes(range(97, 123)) + b" \t\n\r"
_DIGITS = bytes(range(48, 58))
_NON_ASCII = bytes(range(128, 256))
_UTF8_LEADING = bytes(range(192, 256))


# Texts are counted this many characters (JSON: bytes) at a time, so a 30 MB string never
# becomes a 30 MB bytes copy plus its translations at once: peak memory of one slice.
_SLICE = 1 << 20

# Claude Code sends the same system prompt, tools and history every turn. Each text's counts
# are remembered under its length and its 64-bit string hash (SipHash with a per-process
# random key): ~6x cheaper than counting, ~3x cheaper than a SHA-256 of its UTF-8 (which this
# was), and it keeps nothing of the text alive. Two texts meeting on one key has odds of about
# 2^-64 per pair, and would cost one text's estimate, never its content (docs/architecture.md,
# "Caches"). Each tool's counts are remembered under its JSON. Short texts cost less to count
# than to look up.
TEXT_MEMO_MIN_CHARS = 512
# ~200 bytes an entry (key, counts, LRU links): at most ~1 MB.
TEXT_MEMO_MAX_ENTRIES = 4096
TOOL_MEMO_MAX_ENTRIES = 1024
# Keys only: the values are four counts.
TOOL_MEMO_MAX_BYTES = 1024 * 1024
_Counts = tuple[int, int, int, int]
_TEXT_COUNTS: BoundedMemo[tuple[int, int], _Counts] = BoundedMemo(
    "text token counts", max_entries=TEXT_MEMO_MAX_ENTRIES, max_weight=TEXT_MEMO_MAX_ENTRIES
)
# A tool's name, description and schema: their counts and how many pieces they were.
_TOOL_COUNTS: BoundedMemo[bytes, tuple[_Counts, int]] = BoundedMemo(
    "tool token counts", max_entries=TOOL_MEMO_MAX_ENTRIES, max_weight=TOOL_MEMO_MAX_BYTES
)


class _Tally:
    """Counts character classes as texts arrive, as if they were joined with newlines.

    Counted one by one, not joined: a joined string is as wide as its widest character (one
    emoji makes a 2 MB history an 8 MB string: 10 ms and 15 MB at peak, against 2 ms and under
    1 MB). Counted at once, not collected: nothing but the counts outlives a text's turn."""

    __slots__ = ("counts", "extra_tokens", "pieces")

    def __init__(self) -> None:
        self.counts = [0, 0, 0, 0]
        self.pieces = 0
        self.extra_tokens = 0

    def add(self, text: object, *, remember: bool = True) -> None:
        """A text; `remember`: look its counts up in (or add them to) the text memo."""
        if isinstance(text, str) and text:
            self.pieces += 1
            if len(text) < TEXT_MEMO_MIN_CHARS:
                _add_bytes(self.counts, text.encode("utf-8", "surrogatepass"))
            elif remember:
                counts = _TEXT_COUNTS.get((len(text), hash(text)), 1, lambda: _text_counts(text))
                self._add_counts(counts, 0)
            else:
                self._add_counts(_text_counts(text), 0)

    def _add_counts(self, counts: _Counts, pieces: int) -> None:
        mine = self.counts
        mine[0] += counts[0]
        mine[1] += counts[1]
        mine[2] += counts[2]
        mine[3] += counts[3]
        self.pieces += pieces

    def add_tool(self, tool: Mapping, key: bytes | None) -> None:
        """A tool's name, description and input schema; `key`: its memo.json_key."""
        if key is None:
            self._add_tool_parts(tool)
            return
        counts, pieces = _TOOL_COUNTS.get(key, len(key), lambda: _tool_counts(tool))
        self._add_counts(counts, pieces)

    def _add_tool_parts(self, tool: Mapping, *, remember: bool = True) -> None:
        self.add(tool.get("name"), remember=remember)
        self.add(tool.get("description"), remember=remember)
        schema = tool.get("input_schema")
        if schema is not None:
            self.add_json(schema)

    def add_json(self, value: object) -> None:
        """A value as its compact JSON (tool schemas, tool inputs), counted from the bytes."""
        data = _json_bytes(value)
        if not data:
            return
        self.pieces += 1
        if len(data) <= _SLICE:
            _add_bytes(self.counts, data)
            return
        view = memoryview(data)
        for start in range(0, len(data), _SLICE):
            _add_bytes(self.counts, view[start : start + _SLICE].tobytes())

    def tokens(self) -> int:
        if not self.pieces:
            return self.extra_tokens
        counts = list(self.counts)
        counts[0] += self.pieces - 1  # the joining newlines
        return _tokens_from_counts(counts) + self.extra_tokens


def _text_counts(text: str) -> _Counts:
    counts = [0, 0, 0, 0]
    for start in range(0, len(text), _SLICE):
        piece = text[start : start + _SLICE]  # the string itself when it is short
        _add_bytes(counts, piece.encode("utf-8", "surrogatepass"))
    return counts[0], counts[1], counts[2], counts[3]


def _tool_counts(tool: Mapping) -> tuple[_Counts, int]:
    """A tool's counts, a function of its JSON: its name and description are strings in it,
    and its schema is counted from its own JSON, which the tool's contains."""
    tally = _Tally()
    tally._add_tool_parts(tool, remember=False)  # the tool memo keeps these counts
    counts = tally.counts
    return (counts[0], counts[1], counts[2], counts[3]), tally.pieces


def _add_bytes(counts: list[int], data: bytes) -> None:
    """Add the UTF-8 text's letters-and-whitespace, digits, ASCII punctuation and non-ASCII
    characters to `counts`."""
    # Letters and whitespace are most of any request: drop them first so the remaining
    # passes run over a small rest.
    rest = data.translate(None, _LETTERS_AND_SPACE)
    counts[0] += len(data) - len(rest)
    without_digits = rest.translate(None, _DIGITS)
    counts[1] += len(rest) - len(without_digits)
    counts[2] += len(without_digits.translate(None, _NON_ASCII))
    # One leading byte per non-ASCII character; continuation bytes are not counted (so a
    # slice boundary inside a character changes nothing).
    counts[3] += len(without_digits) - len(without_digits.translate(None, _UTF8_LEADING))


def _tokens_from_counts(counts: list[int]) -> int:
    letters_and_space, digits, ascii_punctuation, non_ascii_chars = counts
    estimate = (
        LETTER_AND_SPACE_TOKENS * letters_and_space
        + DIGIT_TOKENS * digits
        + PUNCTUATION_TOKENS * ascii_punctuation
        + NON_ASCII_TOKENS * non_ascii_chars
    )
    return max(round(estimate), 1)


def _add_content(tally: _Tally, content: object) -> None:
    """System prompts and message contents alike are a string or a list of blocks."""
    if isinstance(content, str):
        tally.add(content)
    elif isinstance(content, list):
        _add_blocks(tally, content)


# A tools list's token counts, summed: the counts, how many texts they were, how many tools.
ToolsTally = tuple[_Counts, int, int]


def tally_tools(tools: object, keys: tuple[bytes | None, ...]) -> ToolsTally:
    """The counts of a request's tools (`keys`: memo.tool_keys of them), for estimate_tokens."""
    tally = _Tally()
    counted = 0
    if isinstance(tools, list):
        for position, tool in enumerate(tools):
            if isinstance(tool, Mapping):
                counted += 1
                tally.add_tool(tool, keys[position])
    counts = tally.counts
    return (counts[0], counts[1], counts[2], counts[3]), tally.pieces, counted


def estimate_tokens(request: Mapping, tools: ToolsTally | None = None) -> int:
    """Estimated input tokens of an Anthropic request (system + messages + tools); always >= 1.

    `tools`: tally_tools of the request's tools, when the caller has it already."""
    tally = _Tally()
    tally.extra_tokens += REQUEST_OVERHEAD_TOKENS
    _add_content(tally, request.get("system"))
    messages = request.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not (type(message) is dict or isinstance(message, Mapping)):
                continue
            tally.extra_tokens += MESSAGE_OVERHEAD_TOKENS
            _add_content(tally, message.get("content"))
    if tools is None:
        listed = request.get("tools")
        tools = tally_tools(listed, memo.tool_keys(listed))
    counts, pieces, counted = tools
    tally._add_counts(counts, pieces)
    tally.extra_tokens += TOOL_OVERHEAD_TOKENS * counted
    return max(tally.tokens(), 1)


def _add_blocks(tally: _Tally, blocks: Iterable[Any]) -> None:
    for block in blocks:
        if type(block) is not dict:  # parsed JSON: skip the slower ABC checks
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
            tally.add_json(block.get("input"))
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


def _json_bytes(value: object) -> bytes:
    """Compact JSON of a value; for what orjson refuses (only Python callers can pass it:
    a parsed, validated request always encodes), its repr, and nothing if even that fails."""
    try:
        return orjson.dumps(value)
    except TypeError:
        try:
            return str(value).encode("utf-8", "surrogatepass")
        except (RecursionError, ValueError):
            return b""
