"""File-only logging with secret redaction: the proxy must never write to claude's terminal.

Records are queued by the logging call and written by a background thread, so the event loop
never waits on the disk (a 1 MB body with log_bodies); the file rotates at MAX_LOG_BYTES and
it and its backups are created 0600, as they may hold prompts."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
from collections.abc import Iterable
from logging.handlers import QueueHandler, QueueListener, RotatingFileHandler
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


class _QueueingHandler(QueueHandler):
    """What the loggers hold: queues each record for the listener thread, which owns the file.
    Closing it drains the queue and closes the file."""

    def __init__(self, target: logging.Handler) -> None:
        # Unbounded: a full queue would drop records or block the loop; each record is small
        # (bodies are clipped before logging) and the writer keeps up with anything but a
        # stalled disk.
        records: queue.Queue[logging.LogRecord] = queue.Queue()
        super().__init__(records)
        self._records = records
        self._target = target
        self._listener: QueueListener | None = QueueListener(records, target)
        self._listener.start()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        prepared = super().prepare(record)
        # Python 3.10 leaves it: the file handler would print the stack a second time.
        prepared.stack_info = None
        return prepared

    def flush(self) -> None:
        """Wait until every record queued so far is in the file."""
        if self._listener is not None:
            self._records.join()  # the listener marks each record done once written
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
