"""Upstream failures to Anthropic errors, worded so Claude Code's own recovery kicks in (docs/wire.md, "Errors")."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from cc_nemo.translate.cloudflare_errors import (
    CAPACITY,
    CLOUDFLARE_AUTH,
    DAILY_QUOTA,
    GATEWAY_AUTH,
    NOT_FOUND_CODES,
    PERMISSION_CODES,
    RATE_LIMIT,
    SERVER_CODES,
    TIMEOUT_CODES,
    TOO_LARGE_CODES,
    as_int,
    parse_error_envelope,
)

_MAX_UPSTREAM_TEXT = 600

_CONTEXT_OVERFLOW = re.compile(
    r"maximum context length|context length|context window|too many tokens|"
    r"prompt is too long|exceeds the model",
    re.IGNORECASE,
)
# Figures inside the overflow texts of vLLM, OpenAI and Anthropic-style servers.
_LIMIT_PATTERNS = (
    re.compile(r"maximum context length (?:is|of) (\d+)", re.IGNORECASE),
    re.compile(r"context (?:length|window|limit)(?: of| is)? (\d+)", re.IGNORECASE),
    re.compile(r"tokens? > (\d+) maximum", re.IGNORECASE),
)
_INPUT_PATTERNS = (
    re.compile(r"prompt contains (?:at least )?(\d+)", re.IGNORECASE),
    re.compile(r"(\d+) tokens from the input", re.IGNORECASE),
    re.compile(r"\((\d+) in the messages", re.IGNORECASE),
    re.compile(r"messages resulted in (\d+) tokens", re.IGNORECASE),
    re.compile(r"prompt is too long: (\d+)", re.IGNORECASE),
    re.compile(r"input(?: length)? (?:of |is )?(\d+) tokens", re.IGNORECASE),
)
_OUTPUT_PATTERNS = (
    re.compile(r"requested (\d+) output tokens", re.IGNORECASE),
    re.compile(r"(\d+) tokens for the completion", re.IGNORECASE),
    re.compile(r"(\d+) in the completion", re.IGNORECASE),
)


@dataclass(frozen=True)
class AnthropicError:
    """An error in Anthropic's shape, plus what the proxy needs to answer and retry it."""

    status: int
    type: str
    message: str
    retry_after: str | None = None
    retryable_upstream: bool = False

    def body(self, request_id: str) -> dict:
        """The JSON body of a plain HTTP error response."""
        return {
            "type": "error",
            "error": {"type": self.type, "message": self.message},
            "request_id": request_id,
        }

    def event(self) -> dict:
        """The payload of an SSE `error` event, for failures after the stream began."""
        return {"type": "error", "error": {"type": self.type, "message": self.message}}


class ErrorReply(Exception):
    """Answer the client with this Anthropic error: a plain HTTP error while nothing is sent,
    an SSE `error` event once a stream is committed (the proxy's outer middleware decides)."""

    def __init__(self, error: AnthropicError) -> None:
        super().__init__(error.message)
        self.error = error


# Statuses of failures that may pass if the same request is sent again.
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})


def is_transient(error: AnthropicError) -> bool:
    """Whether sending the same request again may succeed: capacity, rate limits, 5xx,
    timeouts, drops and truncations; not a bad request, auth, quota or an overflow."""
    return error.retryable_upstream or error.status in _TRANSIENT_STATUSES


def as_stream_error(error: AnthropicError) -> AnthropicError:
    """The error to put in an SSE `error` event once the stream is committed.

    Claude Code retries only `overloaded_error` there; any other type ends the turn
    (docs/wire.md, "Errors after the commit"). So a transient failure is reported as
    overloaded, and a permanent one keeps its own type."""
    if error.type == "overloaded_error" or not is_transient(error):
        return error
    return AnthropicError(
        529,
        "overloaded_error",
        error.message,
        retry_after=error.retry_after,
        retryable_upstream=True,
    )


def connect_error(detail: str) -> AnthropicError:
    """Upstream unreachable: 529 so Claude Code backs off and retries."""
    return AnthropicError(
        529, "overloaded_error", f"Upstream unreachable: {detail}", retryable_upstream=True
    )


def timeout_error(detail: str) -> AnthropicError:
    """Upstream too slow before its first byte."""
    return AnthropicError(504, "timeout_error", f"Upstream timed out: {detail}")


def invalid_request(message: str) -> AnthropicError:
    """A request we refuse before calling upstream."""
    return AnthropicError(400, "invalid_request_error", message)


def map_upstream_error(
    status: int,
    body: bytes | str,
    *,
    retry_after: str | None = None,
    estimated_input_tokens: int = 0,
    context_window: int | None = None,
    max_tokens: int | None = None,
) -> AnthropicError:
    """Map an upstream HTTP error (status + raw body) to the error Claude Code should see."""
    envelope = parse_error_envelope(body)
    text = _clip(envelope.message)
    code = envelope.known_code()

    if _is_context_overflow(status, code, text):
        return _context_overflow_error(text, estimated_input_tokens, context_window, max_tokens)

    prefix = f"Upstream (Workers AI {code}): " if code is not None else f"Upstream {status}: "
    detail = prefix + (text or "no error details")

    if code == CAPACITY:
        return AnthropicError(
            529, "overloaded_error", detail, retry_after=retry_after, retryable_upstream=True
        )
    if code == RATE_LIMIT:
        return AnthropicError(
            429, "rate_limit_error", detail, retry_after=retry_after, retryable_upstream=True
        )
    if code == DAILY_QUOTA:
        # 402 rather than 429: the SDK would otherwise retry a quota that only resets tomorrow.
        return AnthropicError(
            402,
            "billing_error",
            detail + " (the daily free Workers AI allocation is used up; retrying will not help)",
        )
    if code == GATEWAY_AUTH:
        return AnthropicError(
            401,
            "authentication_error",
            detail
            + " (the AI Gateway token was rejected; check the gateway's authentication token)",
        )
    if code == CLOUDFLARE_AUTH:
        return AnthropicError(
            401,
            "authentication_error",
            detail + " (the Cloudflare API token was rejected; check it has Workers AI permission)",
        )
    if code in PERMISSION_CODES:
        return AnthropicError(403, "permission_error", detail)
    if code in NOT_FOUND_CODES:
        return AnthropicError(404, "not_found_error", detail)
    if code in TIMEOUT_CODES:
        return AnthropicError(504, "timeout_error", detail)
    if code in TOO_LARGE_CODES:
        return AnthropicError(413, "request_too_large", detail)
    if code in SERVER_CODES:
        return AnthropicError(500, "api_error", detail, retryable_upstream=True)
    return _map_by_status(status, detail, retry_after)


def stream_error_from_chunk(
    chunk: Mapping,
    *,
    estimated_input_tokens: int = 0,
    context_window: int | None = None,
    max_tokens: int | None = None,
) -> AnthropicError | None:
    """An error payload arriving as a `data:` chunk (or a 200 body) instead of a completion."""
    if not _is_error_payload(chunk):
        return None
    status = 500
    error = chunk.get("error")
    for candidate in (
        error.get("code") if isinstance(error, Mapping) else None,
        chunk.get("code"),
        error.get("status") if isinstance(error, Mapping) else None,
    ):
        number = as_int(candidate)
        if number is not None and 400 <= number <= 599:
            status = number
            break
    return map_upstream_error(
        status,
        orjson.dumps(_plain(chunk)),
        estimated_input_tokens=estimated_input_tokens,
        context_window=context_window,
        max_tokens=max_tokens,
    )


def _is_error_payload(chunk: Mapping) -> bool:
    if chunk.get("error"):
        return True
    if chunk.get("success") is False and not chunk.get("choices"):
        return True
    return chunk.get("object") == "error"


def _map_by_status(status: int, detail: str, retry_after: str | None) -> AnthropicError:
    if status in (401,):
        return AnthropicError(
            401,
            "authentication_error",
            detail + " (check the Cloudflare API token and, for an authenticated gateway, "
            "the AI Gateway token)",
        )
    if status == 402:
        return AnthropicError(402, "billing_error", detail)
    if status == 403:
        return AnthropicError(403, "permission_error", detail)
    if status in (404, 405):
        return AnthropicError(404, "not_found_error", detail)
    if status == 408:
        return AnthropicError(504, "timeout_error", detail)
    if status == 413:
        return AnthropicError(413, "request_too_large", detail)
    if status == 429:
        return AnthropicError(429, "rate_limit_error", detail, retry_after=retry_after)
    if status == 503:
        return AnthropicError(
            529, "overloaded_error", detail, retry_after=retry_after, retryable_upstream=True
        )
    if status == 504:
        return AnthropicError(504, "timeout_error", detail)
    if status >= 500:
        return AnthropicError(500, "api_error", detail, retryable_upstream=True)
    return AnthropicError(400, "invalid_request_error", detail)


def _is_context_overflow(status: int, code: int | None, text: str) -> bool:
    if status in (401, 403, 404, 429) or status >= 500:
        return False
    if code in (CAPACITY, RATE_LIMIT, DAILY_QUOTA):
        return False
    return bool(_CONTEXT_OVERFLOW.search(text))


def _context_overflow_error(
    text: str, estimated_input: int, context_window: int | None, max_tokens: int | None
) -> AnthropicError:
    """Anthropic's exact wording: Claude Code compacts on the first, shrinks max_tokens on the second."""
    limit = _first_number(_LIMIT_PATTERNS, text) or context_window
    upstream_input = _first_number(_INPUT_PATTERNS, text)
    requested_output = _first_number(_OUTPUT_PATTERNS, text) or max_tokens
    prompt = max(upstream_input or estimated_input, 1)
    if limit is None:
        limit = max(prompt - 1, 1)
    if requested_output and prompt <= limit and prompt + requested_output > limit:
        message = (
            "input length and `max_tokens` exceed context limit: "
            f"{prompt} + {requested_output} > {limit}"
        )
    else:
        # Upstream says the prompt overflows even if our estimate disagrees: its count wins.
        message = f"prompt is too long: {max(prompt, limit + 1)} tokens > {limit} maximum"
    return AnthropicError(400, "invalid_request_error", message)


def _first_number(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return int(match.group(1))
    return None


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_UPSTREAM_TEXT else text[:_MAX_UPSTREAM_TEXT] + "…"


def _plain(value: Any) -> Any:
    """orjson only serialises real dicts; chunks may be any Mapping."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
