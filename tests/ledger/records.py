"""Ledger records for tests that need rows without a proxy in front."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cc_nemo.ledger.schema import RequestRecord, connect
from cc_nemo.ledger.summary import SessionSummary, stored_summary


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


def summaries_by_session(path: Path) -> dict[str, SessionSummary]:
    """Each proxy session's summary, read from the ledger file at `path`."""
    connection = connect(path, create=False)
    assert connection is not None, f"no ledger at {path}"
    try:
        sessions = [
            row[0] for row in connection.execute("SELECT DISTINCT proxy_session FROM requests")
        ]
        return {session: stored_summary(connection, session) for session in sessions}
    finally:
        connection.close()


def approx_cost(summary: SessionSummary) -> SessionSummary:
    """`summary` comparing equal to one whose cost differs by float rounding only (SQLite
    and Python may add the same costs in another order)."""
    return replace(summary, cost_usd=pytest.approx(summary.cost_usd))
