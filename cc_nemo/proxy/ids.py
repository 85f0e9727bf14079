"""Opaque ids for requests, messages and tool calls, in the shapes Anthropic's clients expect."""

from __future__ import annotations

import os
import string

_ALPHABET = (string.ascii_letters + string.digits).encode("ascii")
_SUFFIX_LENGTH = 24
# One os.urandom per id (secrets.choice per character was ~50 syscalls per request). A byte
# below 248 = 4 x 62 maps onto the alphabet evenly (its value mod 62); the rest are dropped, so
# every character stays equally likely and the ids as unpredictable as the system's CSPRNG.
_EVEN_SPAN = len(_ALPHABET) * (256 // len(_ALPHABET))
_TO_ALPHABET = bytes(_ALPHABET[value % len(_ALPHABET)] for value in range(256))
_UNEVEN_BYTES = bytes(range(_EVEN_SPAN, 256))
# Enough bytes that a second urandom is needed about once in 10^8 ids.
_DRAW = _SUFFIX_LENGTH + 10


def _random_suffix(length: int = _SUFFIX_LENGTH) -> str:
    suffix = b""
    while len(suffix) < length:
        suffix += os.urandom(max(_DRAW, length)).translate(_TO_ALPHABET, _UNEVEN_BYTES)
    return suffix[:length].decode("ascii")


def new_request_id() -> str:
    """A `req_…` id for the `request-id` header and error bodies."""
    return "req_" + _random_suffix()


def new_message_id() -> str:
    """A `msg_…` id for one assistant message."""
    return "msg_" + _random_suffix()


def new_tool_id() -> str:
    """A `toolu_…` id; matches `^[a-zA-Z0-9_-]+$` as Claude Code requires."""
    return "toolu_" + _random_suffix()
