"""Ledger records for tests that need rows without a proxy in front."""

from __future__ import annotations

import time
from typing import Any

from cc_nemo.ledger.schema import RequestRecord


def make_record(**overrides: Any) -> RequestRecord:
    """A successful streamed request; `overrides` replace any field."""
    fields: dict[str, Any] = {
        "ts": time.time(),
        "proxy_session": "0" * 32,
        "claude_session": None,
        "request_id": "req_1",
        "model": "nemotron",
        "upstream_model": "workers-ai/@cf/nvidia/nemotron",
        "stream": True,
        "status": 200,
        "error_type": None,
        "attempts": 1,
        "input_tokens": 1000,
        "cache_read_tokens": 0,
        "output_tokens": 200,
        "reasoning_tokens": 0,
        "cost_usd": 0.001,
        "ttft_ms": 100.0,
        "duration_ms": 500.0,
    }
    fields.update(overrides)
    return RequestRecord(**fields)
