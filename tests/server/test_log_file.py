"""proxy.log itself: private from its creation, rotated, written off the event loop, and
never holding a secret, whichever file a record lands in."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cc_nemo.proxy.logs import (
    LOG_BACKUP_COUNT,
    LOGGER_NAME,
    MAX_LOG_BYTES,
    REDACTED,
    close_logging,
    configure_logging,
)

SECRET = "hunter2-secret-token"
log = logging.getLogger(f"{LOGGER_NAME}.test")

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes and FIFOs are POSIX")


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@posix_only
def test_a_new_log_file_is_never_readable_by_others_not_even_before_a_chmod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Creating the file with the umask's mode and chmod-ing it afterwards leaves a window in
    # which others can open it (and keep it open): record the mode each chmod finds.
    log_file = tmp_path / "logs" / "proxy.log"
    modes_before_chmod: list[int] = []
    real_chmod, real_fchmod = os.chmod, os.fchmod

    def chmod(path: object, mode: int, **kwargs: object) -> None:
        if Path(str(path)) == log_file:
            modes_before_chmod.append(mode_of(log_file))
        real_chmod(path, mode, **kwargs)  # type: ignore[arg-type]

    def fchmod(fd: int, mode: int) -> None:
        modes_before_chmod.append(stat.S_IMODE(os.fstat(fd).st_mode))
        real_fchmod(fd, mode)

    monkeypatch.setattr(os, "chmod", chmod)
    monkeypatch.setattr(os, "fchmod", fchmod)
    with umask(0):
        handler = configure_logging(log_file, secrets=[SECRET])
    try:
        assert mode_of(log_file) == 0o600
        assert all(mode & 0o077 == 0 for mode in modes_before_chmod), modes_before_chmod
    finally:
        close_logging(handler)


@posix_only
def test_an_existing_log_file_open_to_others_is_made_private(tmp_path: Path) -> None:
    log_file = tmp_path / "proxy.log"
    log_file.write_text("from an older version\n")
    log_file.chmod(0o644)
    handler = configure_logging(log_file, secrets=[SECRET])
    close_logging(handler)
    assert mode_of(log_file) == 0o600
    assert log_file.read_text().startswith("from an older version\n")


def test_the_log_rotates_keeps_its_backups_private_and_redacts_in_every_file(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "logs" / "proxy.log"
    body = "b" * (1024 * 1024)
    handler = configure_logging(log_file, secrets=[SECRET])
    try:
        # Enough 1 MB bodies to fill the file and every backup, and to drop the oldest one.
        for n in range((LOG_BACKUP_COUNT + 1) * MAX_LOG_BYTES // len(body) + 5):
            log.info("req_%d body with %s: %s", n, SECRET, body)
    finally:
        close_logging(handler)
    files = sorted(log_file.parent.iterdir())
    assert [f.name for f in files] == ["proxy.log"] + [
        f"proxy.log.{n}" for n in range(1, LOG_BACKUP_COUNT + 1)
    ]
    for path in files:
        assert path.stat().st_size <= MAX_LOG_BYTES
        if os.name == "posix":
            assert mode_of(path) == 0o600, path.name
        text = path.read_text()
        assert SECRET not in text
        assert REDACTED in text


def test_close_logging_writes_every_queued_record_and_flush_waits_for_them(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "proxy.log"
    handler = configure_logging(log_file, secrets=[SECRET])
    try:
        for n in range(500):
            log.info("line %d %s", n, SECRET)
        handler.flush()
        assert log_file.read_text().count("\n") == 500
        for n in range(500, 1000):
            log.info("line %d", n)
    finally:
        close_logging(handler)
    lines = log_file.read_text().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        f"line {n} {REDACTED}" if n < 500 else f"line {n}" for n in range(1000)
    ]


def test_a_line_is_as_it_was_when_logged_and_in_the_file_within_a_second(
    tmp_path: Path,
) -> None:
    """Lines are formatted by the writer thread, a moment later: only arguments that cannot
    change wait for it; a list is formatted as it was at the call."""
    log_file = tmp_path / "proxy.log"
    handler = configure_logging(log_file, secrets=[SECRET])
    try:
        items = ["before"]
        logged_at = time.monotonic()
        log.info("items %s, %s of %d", items, SECRET, 3)
        items.append("after")
        while "items" not in log_file.read_text():
            assert time.monotonic() - logged_at < 1.0, "the line took a second"
            time.sleep(0.01)
    finally:
        close_logging(handler)
    [line] = log_file.read_text().splitlines()
    assert line.endswith(f": items ['before'], {REDACTED} of 3")


@posix_only
def test_a_stalled_log_file_never_blocks_the_logging_call(tmp_path: Path) -> None:
    # A FIFO nobody reads stands in for a stalled disk: a write past its buffer blocks.
    log_file = tmp_path / "proxy.log"
    os.mkfifo(log_file)
    reader = os.open(log_file, os.O_RDONLY | os.O_NONBLOCK)
    handler = configure_logging(log_file, secrets=[SECRET])
    took: list[float] = []

    def log_bodies() -> None:
        started = time.perf_counter()
        for _ in range(4):
            log.info("upstream reply: %s %s", SECRET, "x" * (1024 * 1024))
        took.append(time.perf_counter() - started)

    caller = threading.Thread(target=log_bodies, daemon=True)
    caller.start()
    caller.join(timeout=5)
    received = bytearray()
    try:
        assert took and took[0] < 0.5, "the logging call waited for the file"
    finally:
        closing = threading.Thread(target=close_logging, args=(handler,), daemon=True)
        closing.start()
        deadline = time.monotonic() + 30
        while (closing.is_alive() or caller.is_alive()) and time.monotonic() < deadline:
            with contextlib.suppress(BlockingIOError):
                received += os.read(reader, 1 << 20)
        with contextlib.suppress(BlockingIOError):
            received += os.read(reader, 1 << 20)
        os.close(reader)
    assert not closing.is_alive()
    text = received.decode()
    assert text.count("upstream reply: ") == 4
    assert SECRET not in text
