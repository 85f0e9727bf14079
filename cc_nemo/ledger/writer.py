"""Appends records to the ledger from a background thread, so the event loop never waits on
SQLite (docs/architecture.md, "The usage ledger").

The loop only puts a record on a queue. One thread, with its own connection, takes whatever
has queued up and writes it in one transaction. Idle, the first record wakes it; it then lets
others gather for BATCH_WINDOW_S, so a busy proxy costs a few wake-ups and commits a second,
not one per request, and a row lands at most that much later (the status line reads it). Another proxy holding the write lock makes it
wait (the busy timeout, then a retry of the same batch), never the loop. A ledger that cannot be
opened or written costs one warning in the log; the records still reach the caller's in-memory
totals, so the exit summary stays right."""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path

from cc_nemo.ledger.schema import INSERT_SQL, RequestRecord, connect

log = logging.getLogger(__name__)

# Rows per transaction at most: a long backlog is written in a few commits, not one per row,
# without holding the write lock for long.
BATCH_MAX = 256
# After the first record of a quiet spell wakes the thread, how long the next ones may gather.
BATCH_WINDOW_S = 0.1
# How long close() waits for the backlog (another writer may hold the lock for a while).
CLOSE_TIMEOUT_S = 10.0
# Between attempts at a batch the database was too busy for (busy_timeout already waited).
RETRY_DELAY_S = 0.05
RETRY_DELAY_MAX_S = 1.0
# SQLite's own wait for the lock, per attempt: short, so close() can give up near its deadline
# (the retry loop above keeps waiting as long as the proxy runs).
WRITER_BUSY_TIMEOUT_MS = 1000

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


def is_busy(exc: sqlite3.Error) -> bool:
    """Another connection holds the lock: worth trying again (unlike a full disk or a
    read-only file)."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    message = str(exc)
    return "locked" in message or "busy" in message


class LedgerWriter:
    """One background thread writing records to the ledger at `path`, in batches."""

    def __init__(self, path: Path, *, batch_max: int = BATCH_MAX) -> None:
        self.path = path
        self._batch_max = batch_max
        # None asks the thread to stop.
        self._queue: queue.SimpleQueue[RequestRecord | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="cc-proxy-ledger", daemon=True)
        self._closed = False
        # Set by close(): ends the gathering window at once.
        self._hurry = threading.Event()
        # Set by close(): after it, a busy ledger is given up on instead of retried.
        self._deadline: float | None = None
        self.submitted = 0
        self.written = 0
        self.commits = 0
        # Why the ledger is unusable, once it is; nothing more is written after that.
        self.failure: str | None = None

    def start(self) -> None:
        self._thread.start()

    def submit(self, record: RequestRecord) -> bool:
        """Queue `record` (never blocks); False once the writer is closed."""
        if self._closed:
            return False
        self.submitted += 1
        self._queue.put(record)
        return True

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> bool:
        """Write what is queued, close the connection and stop the thread (blocks: call it
        off the event loop). True when every submitted record is in the ledger."""
        if not self._closed:
            self._closed = True
            self._deadline = time.monotonic() + timeout
            self._queue.put(None)
            self._hurry.set()
        if self._thread.is_alive():
            # The deadline, plus one wait of SQLite's own that began just before it.
            self._thread.join(timeout + WRITER_BUSY_TIMEOUT_MS / 1000 + 1.0)
        return not self._thread.is_alive() and self.written == self.submitted

    # ---- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        connection = self._open()
        try:
            while True:
                batch, stop = self._next_batch()
                if batch and connection is not None and self.failure is None:
                    self._write(connection, batch)
                if stop:
                    return
        finally:
            if connection is not None:
                with contextlib.suppress(sqlite3.Error):
                    connection.close()

    def _open(self) -> sqlite3.Connection | None:
        delay = RETRY_DELAY_S
        while True:
            try:
                connection = connect(self.path)
                break
            except sqlite3.Error as exc:
                # Another proxy creating the file or switching it to WAL at the same moment.
                if is_busy(exc) and not self._past_deadline():
                    delay = self._pause(delay)
                    continue
                self._give_up(exc)
                return None
            except OSError as exc:
                self._give_up(exc)
                return None
        if connection is None:  # connect(create=True) always returns one
            return None
        # Transactions are ours (BEGIN IMMEDIATE ... COMMIT), not the sqlite3 module's.
        connection.isolation_level = None
        connection.execute(f"PRAGMA busy_timeout = {WRITER_BUSY_TIMEOUT_MS}")
        return connection

    def _next_batch(self) -> tuple[list[RequestRecord], bool]:
        """Whatever has queued up (waiting for the first, then BATCH_WINDOW_S for more), at
        most batch_max records; and whether close() asked to stop."""
        batch: list[RequestRecord] = []
        try:
            item = self._queue.get_nowait()  # a backlog: no window
        except queue.Empty:
            item = self._queue.get()
            self._hurry.wait(BATCH_WINDOW_S)
        while True:
            if item is None:
                return batch, True
            batch.append(item)
            if len(batch) >= self._batch_max:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False

    def _write(self, connection: sqlite3.Connection, batch: list[RequestRecord]) -> None:
        rows = [record.row() for record in batch]
        delay = RETRY_DELAY_S
        while True:
            try:
                self._insert(connection, rows)
            except sqlite3.Error as exc:
                if is_busy(exc) and not self._past_deadline():
                    delay = self._pause(delay)
                    continue
                self._give_up(exc)
                return
            self.written += len(rows)
            self.commits += 1
            return

    @staticmethod
    def _insert(connection: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
        # IMMEDIATE takes the write lock up front, so a busy ledger fails here, before any row.
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(INSERT_SQL, rows)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            raise

    def _pause(self, delay: float) -> float:
        """Sleep before another attempt (not past close()'s deadline); the next delay."""
        if self._deadline is not None:
            delay = max(0.0, min(delay, self._deadline - time.monotonic()))
        time.sleep(delay)
        return min(delay * 2 or RETRY_DELAY_S, RETRY_DELAY_MAX_S)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    def _give_up(self, exc: BaseException) -> None:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and exc.strerror:
            reason = exc.strerror
        self.failure = reason
        log.warning(
            "usage ledger %s cannot be written (%s): this session's usage is kept in memory only",
            self.path,
            reason,
        )
