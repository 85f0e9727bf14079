"""Pure Anthropic Messages ⇄ OpenAI Chat Completions translation: every rule in docs/wire.md,
as functions and one stream state machine, with no I/O, no clock and no globals but the
bounded memos of pure functions (docs/architecture.md, "Caches")."""

from __future__ import annotations

from cc_nemo.translate.errors import (
    AnthropicError,
    ErrorReply,
    connect_error,
    invalid_request,
    map_upstream_error,
    stream_error_from_chunk,
    timeout_error,
)
from cc_nemo.translate.request import (
    InvalidRequest,
    ResponseContext,
    TranslatedRequest,
    clamp_max_tokens,
    translate_request,
    validate_request,
)
from cc_nemo.translate.response import fold_events, translate_completion
from cc_nemo.translate.sse import SSEDecoder, SSEMessage, encode_event
from cc_nemo.translate.stream import StreamTranslator
from cc_nemo.translate.tokens import estimate_tokens
from cc_nemo.translate.usage import Usage, usage_from_openai

__all__ = [
    "AnthropicError",
    "ErrorReply",
    "InvalidRequest",
    "ResponseContext",
    "SSEDecoder",
    "SSEMessage",
    "StreamTranslator",
    "TranslatedRequest",
    "Usage",
    "clamp_max_tokens",
    "connect_error",
    "encode_event",
    "estimate_tokens",
    "fold_events",
    "invalid_request",
    "map_upstream_error",
    "stream_error_from_chunk",
    "timeout_error",
    "translate_completion",
    "translate_request",
    "usage_from_openai",
    "validate_request",
]
