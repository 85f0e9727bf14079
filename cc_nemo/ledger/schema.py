"""Where the ledger lives, its one table, and how to open it.

WAL mode lets several proxies append while reports read; `busy_timeout` makes a writer that
meets another's lock wait instead of failing. Times are Unix seconds (UTC); reports turn them
into local days."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from cc_nemo.ledger.location import APP_NAME as APP_NAME
from cc_nemo.ledger.location import ENV_LEDGER_PATH as ENV_LEDGER_PATH
from cc_nemo.ledger.location import LEDGER_FILE as LEDGER_FILE
from cc_nemo.ledger.location import ledger_path_in

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    proxy_session TEXT NOT NULL,
    claude_session TEXT,
    request_id TEXT NOT NULL,
    model TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    answered_by TEXT,
    fallback_from TEXT,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    error_type TEXT,
    attempts INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    ttft_ms REAL,
    duration_ms REAL NOT NULL,
    gateway_log_id TEXT
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE INDEX IF NOT EXISTS requests_claude_session ON requests (claude_session);
CREATE INDEX IF NOT EXISTS requests_proxy_session ON requests (proxy_session);
"""

# Insert order: the fields of RequestRecord, which the writer turns into one row each.
COLUMNS = (
    "ts",
    "proxy_session",
    "claude_session",
    "request_id",
    "model",
    "upstream_model",
    "answered_by",
    "fallback_from",
    "stream",
    "status",
    "error_type",
    "attempts",
    "input_tokens",
    "cache_read_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "ttft_ms",
    "duration_ms",
    "gateway_log_id",
)
INSERT_SQL = (
    f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
)


@dataclass(frozen=True)
class RequestRecord:
    """One `/v1/messages` exchange as the ledger keeps it: counts and ids, never prompt text
    or a secret."""

    ts: float
    proxy_session: str
    claude_session: str | None
    request_id: str
    model: str
    upstream_model: str
    stream: bool
    status: int
    error_type: str | None
    attempts: int
    input_tokens: int
    cache_read_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: float
    ttft_ms: float | None
    duration_ms: float
    gateway_log_id: str | None = None
    # When a fallback answered: the alias asked for, and the alias that answered.
    fallback_from: str | None = None
    answered_by: str | None = None

    @property
    def failed(self) -> bool:
        """An HTTP error, or a stream that ended in an `error` event."""
        return self.status >= 400 or self.error_type is not None

    def row(self) -> tuple[object, ...]:
        return tuple(
            int(value) if isinstance(value, bool) else value
            for value in (getattr(self, column) for column in COLUMNS)
        )


def ledger_path() -> Path:
    """`$CC_PROXY_LEDGER`, else `usage.sqlite3` in the per-user data directory."""
    return Path(ledger_path_in(os.environ))


def connect(path: Path | None = None, *, create: bool = True) -> sqlite3.Connection | None:
    """Open the ledger (creating it 0600, in WAL mode, when `create`); None when it does not
    exist and `create` is false, so a reader on a fresh machine reports nothing."""
    path = path if path is not None else ledger_path()
    if not create and not path.exists():
        return None
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Created 0600 before SQLite opens it: it names sessions and models.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if create:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        if connection.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            connection.executescript(SCHEMA)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.commit()
    return connection
