"""What one /v1/messages request did and which model it went to: plain data shared by the
exchange, the streaming and pass-through paths, the log line and the ledger."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cc_nemo.settings.catalog import ModelSpec
from cc_nemo.translate.errors import AnthropicError
from cc_nemo.translate.request import ResponseContext
from cc_nemo.translate.usage import Usage

ErrorMapper = Callable[[int, bytes, "str | None"], AnthropicError]


@dataclass
class Exchange:
    """What one /v1/messages request did, for the request log line and the usage ledger."""

    request_id: str
    started: float
    requested_model: str = ""
    upstream_model: str = ""
    stream: bool = False
    spec: ModelSpec | None = None
    usage: Usage | None = None
    first_byte_at: float | None = None
    error_type: str | None = None
    upstream_attempts: int = 0
    client_gone: bool = False
    # The alias of the model this request asked for when a fallback answered in its place.
    fallback_from: str | None = None
    # Claude Code's own session id (`x-claude-code-session-id`), which its status line sees.
    claude_session_id: str | None = None
    # AI Gateway's id for this request in its logs (`cf-aig-log-id`), when it sends one.
    gateway_log_id: str | None = None
    notes: list[str] = field(default_factory=list)

    def mark_first_byte(self) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = time.monotonic()

    @property
    def ttft_ms(self) -> float | None:
        if self.first_byte_at is None:
            return None
        return (self.first_byte_at - self.started) * 1000


@dataclass
class Route:
    """One model's translation of the request, ready to send."""

    spec: ModelSpec
    upstream_model: str
    # TranslatedRequest.to_send: encode it with orjson; its tools are an orjson.Fragment.
    body: dict[str, Any]
    context: ResponseContext
    error_for: ErrorMapper
