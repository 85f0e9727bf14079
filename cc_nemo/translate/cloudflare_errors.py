"""Cloudflare's error envelopes and codes, read in one place for the proxy and for `login`
(docs/wire.md, "Errors")."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

# Workers AI and AI Gateway error codes cc-proxy acts on.
CAPACITY = 3040  # out of capacity: retry
RATE_LIMIT = 3021  # per-minute limit: retry after retry-after
DAILY_QUOTA = 3036  # the daily free allocation is used up: retrying will not help
GATEWAY_AUTH = 2009  # the AI Gateway token (cf-aig-authorization) was rejected
NO_SUCH_GATEWAY = 2001
COULD_NOT_ROUTE = 7003
CLOUDFLARE_AUTH = 10000  # the Cloudflare API token (Authorization) was rejected
PERMISSION_CODES = frozenset({5018, 5016, 3023, 3041, 5035})
NOT_FOUND_CODES = frozenset({3042, COULD_NOT_ROUTE, 7001, NO_SUCH_GATEWAY, 2008})
TIMEOUT_CODES = frozenset({3007, 3008})
TOO_LARGE_CODES = frozenset({3006})
SERVER_CODES = frozenset({7009})
BAD_INPUT_CODES = frozenset({5006, 8001, 8006, 5004, 3003, 5007})
KNOWN_CODES = (
    {CAPACITY, RATE_LIMIT, DAILY_QUOTA, GATEWAY_AUTH, CLOUDFLARE_AUTH}
    | PERMISSION_CODES
    | NOT_FOUND_CODES
    | TIMEOUT_CODES
    | TOO_LARGE_CODES
    | SERVER_CODES
    | BAD_INPUT_CODES
)

# Binding errors read "3040: Capacity temporarily exceeded".
_CODE_IN_TEXT = re.compile(r"\b(\d{3,5})\s*:")


@dataclass(frozen=True)
class ErrorEnvelope:
    """What an error body says: its first message, the codes its entries carry, and the codes
    written into its messages."""

    message: str
    envelope_codes: tuple[int, ...] = ()
    text_codes: tuple[int, ...] = ()

    @property
    def codes(self) -> tuple[int, ...]:
        return self.envelope_codes + self.text_codes

    def known_code(self) -> int | None:
        """The code to act on: a known one (from the envelope first), else the envelope's own
        code when it looks like a Cloudflare one (4 digits or more)."""
        for code in self.codes:
            if code in KNOWN_CODES:
                return code
        for code in self.envelope_codes:
            if code >= 1000:
                return code
        return None


def parse_error_envelope(body: Any) -> ErrorEnvelope:
    """Any Cloudflare, OpenAI or Anthropic error body (bytes, text or parsed JSON), entries in
    Cloudflare's own parser order: v4 `errors[]`, AI Gateway `error[]` or `error{}`, a bare
    `error` string, then a top-level `message` or `detail`."""
    raw = ""
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        raw = body.strip()
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, Mapping):
            return ErrorEnvelope(raw, (), _codes_in(raw))
        body = parsed
    if not isinstance(body, Mapping):
        return ErrorEnvelope(raw)
    entries: list[Mapping[str, Any]] = []
    for key in ("errors", "error"):
        value = body.get(key)
        if isinstance(value, list):
            entries.extend(entry for entry in value if isinstance(entry, Mapping))
        elif isinstance(value, Mapping):
            entries.append(value)
        elif isinstance(value, str) and value:
            entries.append({"message": value})
    entries.append({"message": body.get("message") or body.get("detail"), "code": body.get("code")})
    envelope_codes: list[int] = []
    messages: list[str] = []
    for entry in entries:
        code = as_int(entry.get("code"))
        if code is not None:
            envelope_codes.append(code)
        message = entry.get("message")
        if isinstance(message, str) and message:
            messages.append(message)
    text_codes = tuple(code for message in messages for code in _codes_in(message))
    return ErrorEnvelope(messages[0] if messages else raw, tuple(envelope_codes), text_codes)


def _codes_in(text: str) -> tuple[int, ...]:
    return tuple(int(code) for code in _CODE_IN_TEXT.findall(text))


def as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
