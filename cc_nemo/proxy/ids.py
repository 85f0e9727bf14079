"""Opaque ids for requests, messages and tool calls, in the shapes Anthropic's clients expect."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
_SUFFIX_LENGTH = 24


def _random_suffix(length: int = _SUFFIX_LENGTH) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_request_id() -> str:
    """A `req_…` id for the `request-id` header and error bodies."""
    return "req_" + _random_suffix()


def new_message_id() -> str:
    """A `msg_…` id for one assistant message."""
    return "msg_" + _random_suffix()


def new_tool_id() -> str:
    """A `toolu_…` id; matches `^[a-zA-Z0-9_-]+$` as Claude Code requires."""
    return "toolu_" + _random_suffix()
