"""File-only logging with secret redaction: the proxy must never write to claude's terminal.

Records are queued by the logging call and written by a background thread, so the event loop
never waits on the disk (a 1 MB body with log_bodies); the file rotates at MAX_LOG_BYTES and
it and its backups are created 0600, as they may hold prompts. The thread also formats the
usual record (the loop only copies it) and writes what gathered in BATCH_WINDOW_S at once:
a request's line costs the loop ~10 us (the LogRecord, mostly) and no thread switch of its own."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Iterable
from logging.handlers import QueueHandler, RotatingFileHandler
from pathlib import Path
from typing import IO, Any

LOGGER_NAME = "cc_nemo"
REDACTED = "[REDACTED]"
# proxy.log rolls over to proxy.log.1 … proxy.log.3 at this size: at most 40 MB on disk.
MAX_LOG_BYTES = 10 * 1024 * 1024
LOG_BACKUP_COUNT = 3
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Marks handlers we installed, so reconfiguring replaces ours and leaves anyone else's alone.
_OWNED_ATTR = "_cc_nemo_owned"
LIBRARY_LOGGERS = ("aiohttp", "asyncio")
# The writer thread lets records gather this long after the first wakes it (a line reaches the
# file at most this late), and writes at most BATCH_MAX of them at once.
BATCH_WINDOW_S = 0.1
BATCH_MAX = 1000
# Asks the writer thread to end.
_STOP = object()


class SecretRedactor(logging.Filter):
    """Replaces every known secret in a log record (message and traceback) before it is written."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret containing another is redacted whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class PrivateRotatingFileHandler(RotatingFileHandler):
    """A RotatingFileHandler whose file is created 0600, never briefly readable by others
    (a chmod after creation leaves that window), and made 0600 when it already existed.
    Backups are the same files renamed, so they stay 0600 too."""

    def _open(self) -> IO[Any]:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.baseFilename, flags, 0o600)
        try:
            if hasattr(os, "fchmod"):
                with contextlib.suppress(OSError):  # not ours to change: still log
                    os.fchmod(fd, 0o600)
            return open(fd, self.mode, encoding=self.encoding, errors=self.errors)
        except BaseException:
            os.close(fd)
            raise

    def write_records(self, records: list[logging.LogRecord]) -> None:
        """Write a batch: each record through the filters (the redaction) and the formatter,
        then one write and one flush per batch, rolling over at maxBytes between lines as
        emit() would (the file's size read once per batch, not twice per record)."""
        lines: list[str] = []
        for record in records:
            try:
                if self.filter(record):
                    lines.append(self.format(record) + self.terminator)
            except Exception:
                self.handleError(record)
        if not lines:
            return
        with self.lock:
            try:
                self._write_lines(lines)
            except Exception:
                self.handleError(records[-1])

    def _write_lines(self, lines: list[str]) -> None:
        if self.stream is None:
            self.stream = self._open()
        stream = self.stream
        # Never roll over anything but a regular file (bpo-45401: /dev/null, a pipe).
        rolls = self.maxBytes > 0 and os.path.isfile(self.baseFilename)
        size = stream.seek(0, os.SEEK_END) if rolls else 0
        pending: list[str] = []
        pending_size = 0
        for line in lines:
            if rolls and size + pending_size and size + pending_size + len(line) >= self.maxBytes:
                stream.write("".join(pending))
                pending, pending_size = [], 0
                self.doRollover()
                stream = self.stream
                size = stream.seek(0, os.SEEK_END)
            pending.append(line)
            pending_size += len(line)
        stream.write("".join(pending))
        stream.flush()


class _BatchingListener:
    """The thread that owns the file: it takes what has queued up and writes it in one go.

    Idle, the first record wakes it; it then lets the next ones gather for BATCH_WINDOW_S, so
    a busy proxy wakes it a few times a second, not once per log line (each wake-up is a
    thread switch and a contended GIL). flush() and stop() cut the window short."""

    def __init__(self, records: queue.SimpleQueue[Any], target: PrivateRotatingFileHandler) -> None:
        self._records = records
        self._target = target
        self._hurry = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cc-proxy-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def flush(self) -> None:
        """Return once every record queued before this call is written."""
        written = threading.Event()
        self._records.put(written)
        self._hurry.set()
        while not written.wait(0.5) and self._thread.is_alive():
            pass

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        self._records.put(_STOP)
        self._hurry.set()
        self._thread.join()

    def _run(self) -> None:
        records = self._records
        while True:
            try:
                item = records.get_nowait()
            except queue.Empty:
                item = records.get()
                self._hurry.wait(BATCH_WINDOW_S)
                self._hurry.clear()
            batch: list[logging.LogRecord] = []
            stop = False
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    self._target.write_records(batch)
                    batch = []
                    item.set()
                else:
                    batch.append(item)
                if len(batch) >= BATCH_MAX:
                    break
                try:
                    item = records.get_nowait()
                except queue.Empty:
                    break
            self._target.write_records(batch)
            if stop:
                return


class _QueueingHandler(QueueHandler):
    """What the loggers hold: queues each record for the listener thread, which owns the file.
    Closing it drains the queue and closes the file."""

    def __init__(self, target: PrivateRotatingFileHandler) -> None:
        # Unbounded: a full queue would drop records or block the loop; each record is small
        # (bodies are clipped before logging) and the writer keeps up with anything but a
        # stalled disk. A SimpleQueue: its put is a tenth of a Queue's, on the event loop.
        records: queue.SimpleQueue[Any] = queue.SimpleQueue()
        super().__init__(records)  # type: ignore[arg-type]  # it only calls put_nowait
        self._target = target
        self._listener: _BatchingListener | None = _BatchingListener(records, target)
        self._listener.start()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if _formattable_later(record):
            # The usual record (a request's line: a format string and a few strings and
            # numbers): the listener thread formats it, after the redaction filter, and the
            # event loop only copies it (the copy keeps other handlers' view unchanged).
            copied = logging.LogRecord.__new__(type(record))
            copied.__dict__.update(record.__dict__)
            return copied
        # Anything else is formatted now, while its arguments and traceback are as logged.
        prepared = super().prepare(record)
        # Python 3.10 leaves it: the file handler would print the stack a second time.
        prepared.stack_info = None
        return prepared

    def flush(self) -> None:
        """Wait until every record queued so far is in the file."""
        listener = self._listener
        if listener is not None:
            listener.flush()
        self._target.flush()

    def close(self) -> None:
        self.acquire()
        try:
            listener, self._listener = self._listener, None
        finally:
            self.release()
        if listener is not None:
            listener.stop()  # writes what is still queued, then the thread ends
        self._target.close()
        super().close()


# Arguments that cannot change after the call: formatting them later gives the same line.
_IMMUTABLE_ARGUMENT_TYPES = frozenset({str, int, float, bool, type(None)})


def _formattable_later(record: logging.LogRecord) -> bool:
    """Whether the record's message can be formatted on another thread, later, to the same
    text: a str format whose arguments are immutable, no traceback or stack to render."""
    if type(record.msg) is not str or record.exc_info or record.stack_info:
        return False
    args = record.args
    if not args:
        return True
    return type(args) is tuple and _IMMUTABLE_ARGUMENT_TYPES.issuperset(map(type, args))


def secret_values(session_token: str, provider_headers: dict[str, str]) -> list[str]:
    """Every string that must never be logged: the session token and each provider header
    value, also without its auth scheme ("Bearer abc" → "abc")."""
    values = [session_token]
    for value in provider_headers.values():
        values.append(value)
        scheme, _, credential = value.partition(" ")
        if credential and scheme.lower() in ("bearer", "basic", "token"):
            values.append(credential.strip())
    return [v for v in values if v]


def configure_logging(log_file: Path | None, *, secrets: Iterable[str]) -> logging.Handler:
    """Route the `cc_nemo` logger (and aiohttp's and asyncio's, whose warnings would otherwise
    reach stderr through logging's last-resort handler) to `log_file` only; with no file, log
    nowhere. Replaces a handler installed by an earlier call. Returns the handler so the
    caller can close it with `close_logging`, which writes out what is still queued.

    The file rotates at MAX_LOG_BYTES with LOG_BACKUP_COUNT backups and is created 0600; it is
    written by a background thread. OSError when the file cannot be opened."""
    handler: logging.Handler
    if log_file is None:
        handler = logging.NullHandler()
        handler.addFilter(SecretRedactor(secrets))
    else:
        log_file = Path(log_file)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        target = PrivateRotatingFileHandler(
            log_file, maxBytes=MAX_LOG_BYTES, backupCount=LOG_BACKUP_COUNT, encoding="utf-8"
        )
        target.setFormatter(logging.Formatter(_FORMAT))
        # In the writer thread: every record, whoever queued it, is redacted right before the
        # file, and the event loop does not pay for scanning megabyte bodies.
        target.addFilter(SecretRedactor(secrets))
        handler = _QueueingHandler(target)
    setattr(handler, _OWNED_ATTR, True)
    for name in (LOGGER_NAME, *LIBRARY_LOGGERS):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, _OWNED_ATTR, False)]:
            close_logging(old)
        logger.propagate = False
        logger.addHandler(handler)
    if log_file is not None:
        logging.getLogger(LOGGER_NAME).setLevel(logging.INFO)
    return handler


def logging_configured() -> bool:
    """Whether `configure_logging` is in effect (e.g. the launcher set it up for the session)."""
    return any(getattr(h, _OWNED_ATTR, False) for h in logging.getLogger(LOGGER_NAME).handlers)


def close_logging(handler: logging.Handler) -> None:
    """Detach and close a handler returned by `configure_logging`: the records still queued
    are written and the file closed before this returns."""
    for name in (LOGGER_NAME, *LIBRARY_LOGGERS):
        logger = logging.getLogger(name)
        if handler in logger.handlers:
            logger.removeHandler(handler)
            if not any(getattr(h, _OWNED_ATTR, False) for h in logger.handlers):
                logger.propagate = True
    handler.close()
