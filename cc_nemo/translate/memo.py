"""Bounded memos of pure translation functions (docs/architecture.md, "Caches").

Claude Code sends the same system prompt, tool definitions and history with every turn of a
session; translating them again costs most of a request's CPU. A memo remembers a pure
function's result for an input it has seen, keyed by the input's content (its own text, or
its canonical JSON bytes), never by identity: a changed input is a different key, so nothing
is ever served stale, and the result is what the function would return anyway. Each memo is
an LRU bounded both in entries and in the size of what it keeps alive, so a long session
with hostile inputs cannot grow it.

Values are shared between requests: nothing may mutate what a memo returns (the translated
upstream body is read-only after translate_request).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any, Generic, TypeVar

import orjson

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MEMOS: list[_Memo] = []
_bypass_depth = 0


class _Memo:
    """What every memo keeps besides its entries: its bounds, its counters, its place in
    all_memos()."""

    __slots__ = ("_entries", "_weight", "hits", "max_entries", "max_weight", "misses", "name")
    _entries: OrderedDict[Any, Any] | list[Any]

    def __init__(self, name: str, *, max_entries: int, max_weight: int) -> None:
        self.name = name
        self.max_entries = max_entries
        self.max_weight = max_weight
        self._weight = 0
        self.hits = 0
        self.misses = 0
        _MEMOS.append(self)

    @property
    def weight(self) -> int:
        return self._weight

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._weight = 0
        self.hits = self.misses = 0


class BoundedMemo(_Memo, Generic[K, V]):
    """An LRU of at most `max_entries` entries whose weights (a key's size, say) sum to at most
    `max_weight`; an entry heavier than the whole budget is computed but never kept."""

    __slots__ = ()
    _entries: OrderedDict[K, tuple[V, int]]

    def __init__(self, name: str, *, max_entries: int, max_weight: int) -> None:
        super().__init__(name, max_entries=max_entries, max_weight=max_weight)
        self._entries = OrderedDict()

    def get(self, key: K, weight: int, compute: Callable[[], V]) -> V:
        """The remembered value for `key`, or `compute()` remembered under it."""
        if _bypass_depth:
            return compute()
        entries = self._entries
        found = entries.get(key)
        if found is not None:
            entries.move_to_end(key)
            self.hits += 1
            return found[0]
        self.misses += 1
        value = compute()
        if weight <= self.max_weight:
            entries[key] = (value, weight)
            self._weight += weight
            while len(entries) > self.max_entries or self._weight > self.max_weight:
                _, (_, dropped) = entries.popitem(last=False)
                self._weight -= dropped
        return value

    def known(self, key: K) -> bool:
        """Whether `key` is remembered (and now the most recent); never inside `bypassed()`."""
        if _bypass_depth or key not in self._entries:
            return False
        self._entries.move_to_end(key)
        self.hits += 1
        return True

    def remember(self, key: K, weight: int, value: V) -> None:
        """Remember `value` under `key` (a value computed elsewhere)."""
        self.get(key, weight, lambda: value)


class RecentMemo(_Memo, Generic[V]):
    """A few values under large bytes keys, found by comparing keys instead of hashing them:
    for a key that is mostly the one seen last (a session's ~60 KB tool list), hashing it on
    every request costs ~6x what comparing it does (lengths first, then one memcmp).
    Most recent first; bounded in entries and in the keys' bytes, like BoundedMemo."""

    __slots__ = ()
    _entries: list[tuple[bytes, V]]

    def __init__(self, name: str, *, max_entries: int, max_weight: int) -> None:
        super().__init__(name, max_entries=max_entries, max_weight=max_weight)
        self._entries = []

    def find(self, key: bytes) -> V | None:
        """The value remembered under `key` (now the most recent), or None."""
        if _bypass_depth:
            return None
        entries = self._entries
        for position, (known, value) in enumerate(entries):
            if known == key:
                if position:
                    entries.insert(0, entries.pop(position))
                self.hits += 1
                return value
        self.misses += 1
        return None

    def add(self, key: bytes, value: V) -> None:
        """Remember `value` under `key` (copied to its own size, see json_key)."""
        if _bypass_depth or len(key) > self.max_weight:
            return
        entries = self._entries
        entries[:] = [entry for entry in entries if entry[0] != key]
        entries.insert(0, (bytes(memoryview(key)), value))
        self._weight = sum(len(known) for known, _ in entries)
        while len(entries) > self.max_entries or self._weight > self.max_weight:
            self._weight -= len(entries.pop()[0])


def json_key(value: object) -> bytes | None:
    """`value`'s compact JSON as a memo key; None while memos are bypassed, or for what JSON
    cannot encode (only Python callers can pass that: a parsed request always encodes)."""
    if _bypass_depth:
        return None
    try:
        encoded = orjson.dumps(value)
    except TypeError:
        return None
    # A copy of its own size: orjson's output keeps the buffer it reserved (~7x the JSON for a
    # tool), and keys live as long as their request, or in a memo (docs/architecture.md, "Caches").
    return bytes(memoryview(encoded))


def tool_keys(tools: object) -> tuple[bytes | None, ...]:
    """The memo key of each of a request's tools (None where there is none): translating a
    request encodes each tool once, for both its function and its token counts."""
    if not isinstance(tools, list):
        return ()
    return tuple(json_key(tool) if isinstance(tool, Mapping) else None for tool in tools)


def active() -> bool:
    """False inside `bypassed()`."""
    return not _bypass_depth


def all_memos() -> tuple[_Memo, ...]:
    return tuple(_MEMOS)


def clear_all() -> None:
    for memo in _MEMOS:
        memo.clear()


@contextlib.contextmanager
def bypassed() -> Iterator[None]:
    """Every memo computes afresh and remembers nothing (tests compare with and without)."""
    global _bypass_depth
    _bypass_depth += 1
    try:
        yield
    finally:
        _bypass_depth -= 1
