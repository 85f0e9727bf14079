"""File-only logging with secret redaction: the proxy must never write to claude's terminal."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

LOGGER_NAME = "cc_nemo"
REDACTED = "[REDACTED]"
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
        return True


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
    caller can close it with `close_logging`."""
    handler: logging.Handler
    if log_file is None:
        handler = logging.NullHandler()
    else:
        log_file = Path(log_file)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
        # The log may hold request bodies (with log_bodies): keep it private to the user.
        with contextlib.suppress(OSError):
            os.chmod(log_file, 0o600)
        handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(SecretRedactor(secrets))
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
    """Detach and close a handler returned by `configure_logging`."""
    for name in (LOGGER_NAME, *LIBRARY_LOGGERS):
        logger = logging.getLogger(name)
        if handler in logger.handlers:
            logger.removeHandler(handler)
            if not any(getattr(h, _OWNED_ATTR, False) for h in logger.handlers):
                logger.propagate = True
    handler.close()
