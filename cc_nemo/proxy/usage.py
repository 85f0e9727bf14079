"""This proxy session's usage: every record goes to the SQLite ledger (through its writer
thread) and into running totals in memory; the exit summary comes from the ledger, or from
those totals when the ledger could not be written (docs/architecture.md, "The usage ledger")."""

from __future__ import annotations

import sqlite3
import uuid
from collections import deque
from pathlib import Path

from cc_nemo.ledger.schema import RequestRecord, connect, ledger_path
from cc_nemo.ledger.summary import SessionSummary, SessionTally, stored_summary
from cc_nemo.ledger.writer import CLOSE_TIMEOUT_S, LedgerWriter

__all__ = ["RECENT_RECORDS", "RequestRecord", "SessionSummary", "UsageLedger"]

# How many of the session's latest records stay in memory (for tests and debugging); the
# totals cover all of them. Each is ~0.6 KB: 10,000 of them were ~6 MB of resident memory
# (bench/README.md, peak RSS); only tests read them, and none more than 50.
RECENT_RECORDS = 100


class UsageLedger:
    """One proxy session's usage. Built on the event loop, `record` is all a request does:
    a deque append, a few additions and a queue put."""

    def __init__(self, path: Path | None = None, *, keep_recent: int = RECENT_RECORDS) -> None:
        # Stored on every row: this session's rows are the exit summary.
        self.session_id = uuid.uuid4().hex
        self._path = path
        self._recent: deque[RequestRecord] = deque(maxlen=keep_recent)
        self._tally = SessionTally()
        self._writer: LedgerWriter | None = None
        self._stored: SessionSummary | None = None

    @property
    def path(self) -> Path:
        """The SQLite file this session writes ($CC_PROXY_LEDGER, else the data directory)."""
        if self._path is None:
            self._path = ledger_path()
        return self._path

    def open(self) -> None:
        """Start writing to the ledger (the thread opens the file: nothing here blocks)."""
        if self._writer is None:
            self._writer = LedgerWriter(self.path)
            self._writer.start()

    def record(self, record: RequestRecord) -> None:
        self._recent.append(record)
        self._tally.add(record)
        if self._writer is not None:
            self._writer.submit(record)

    @property
    def records(self) -> tuple[RequestRecord, ...]:
        """The session's latest records (all of them up to RECENT_RECORDS)."""
        return tuple(self._recent)

    @property
    def failure(self) -> str | None:
        """Why the ledger could not be written, if it could not."""
        return self._writer.failure if self._writer is not None else None

    def summary(self) -> SessionSummary:
        """The session so far, from the totals in memory (cheap: for the running proxy)."""
        return self._tally.summary()

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Flush the writer and read the session's summary back from the ledger. Blocks on
        SQLite: call it off the event loop."""
        writer = self._writer
        if writer is None or not writer.close(timeout):
            return
        try:
            connection = connect(self.path, create=False)
            if connection is None:
                return
            try:
                self._stored = stored_summary(connection, self.session_id)
            finally:
                connection.close()
        except sqlite3.Error:
            return  # written a moment ago; unreadable now: the totals in memory still hold

    def final_summary(self) -> SessionSummary:
        """The exit summary: from the ledger's rows for this session once `close` has
        flushed them all, else (ledger unusable) from the totals in memory."""
        stored = self._stored
        if stored is not None and stored.requests == self._tally.requests:
            return stored
        return self._tally.summary()
