"""The ledger writer on its own: batches from a queue, several writers at once (threads and
processes), and ledgers it cannot use."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cc_nemo.ledger.schema import connect
from cc_nemo.ledger.writer import BATCH_WINDOW_S, WRITER_BUSY_TIMEOUT_MS, LedgerWriter
from tests.ledger.records import make_record
from tests.ledger.write_rows import write_rows

PROCESSES = 4
ROWS_PER_PROCESS = 2000
THREADS = 4
ROWS_PER_THREAD = 1000
# Small batches: many transactions, so the writers really take turns at the lock.
CONTENDED_BATCH = 16
REPO = Path(__file__).resolve().parents[2]


def rows_by_session(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as connection:
        return dict(connection.execute("SELECT proxy_session, count(*) FROM requests GROUP BY 1"))


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def start_writer_process(path: Path, session: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tests.ledger.write_rows", str(path), session]
    return subprocess.Popen(
        [*argv, str(ROWS_PER_PROCESS), str(CONTENDED_BATCH)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_every_submitted_record_is_a_row_with_its_fields(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    writer = LedgerWriter(path)
    writer.start()
    records = [
        make_record(request_id=f"req_{n}", claude_session="c-1", reasoning_tokens=n)
        for n in range(1000)
    ]
    records.append(
        make_record(request_id="req_failed", status=529, error_type="overloaded_error",
                    stream=False, ttft_ms=None, gateway_log_id="01JLOG", attempts=3)
    )  # fmt: skip
    for record in records:
        writer.submit(record)

    assert writer.close() is True
    assert (writer.submitted, writer.written, writer.failure) == (1001, 1001, None)
    connection = connect(path, create=False)
    assert connection is not None
    connection.row_factory = sqlite3.Row
    rows = connection.execute("SELECT * FROM requests ORDER BY id").fetchall()
    assert [row["request_id"] for row in rows] == [r.request_id for r in records]
    assert [row["reasoning_tokens"] for row in rows[:1000]] == list(range(1000))
    last = dict(rows[-1])
    assert last["stream"] == 0 and last["status"] == 529 and last["attempts"] == 3
    assert (last["error_type"], last["ttft_ms"], last["gateway_log_id"]) == (
        "overloaded_error",
        None,
        "01JLOG",
    )
    assert path.stat().st_mode & 0o777 == 0o600
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_records_arriving_together_share_a_commit_and_land_within_a_second(
    tmp_path: Path,
) -> None:
    path = tmp_path / "usage.sqlite3"
    writer = LedgerWriter(path)
    writer.start()
    submitted_at = time.monotonic()
    writer.submit(make_record(request_id="req_first"))
    while not path.exists() or rows_by_session(path) == {}:
        assert time.monotonic() - submitted_at < 1.0, "a row took a second to land"
        time.sleep(0.01)
    started = time.monotonic()
    for n in range(40):  # a busy proxy: a request every 5 ms
        writer.submit(make_record(request_id=f"req_{n}"))
        time.sleep(0.005)
    elapsed = time.monotonic() - started
    assert writer.close() is True
    assert rows_by_session(path) == {"0" * 32: 41}
    # One commit per window, not per record (41 commits if each woke the writer).
    assert writer.commits <= 2 + elapsed / BATCH_WINDOW_S + 1, (writer.commits, elapsed)


def test_a_submit_after_close_is_refused(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path / "usage.sqlite3")
    writer.start()
    assert writer.close() is True
    assert writer.submit(make_record()) is False
    assert (writer.submitted, writer.written) == (0, 0)


def test_processes_and_threads_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    """A fresh ledger (the writers race to create it too), 4 processes and 4 threads."""
    path = tmp_path / "shared" / "usage.sqlite3"
    processes = [start_writer_process(path, f"process-{n}") for n in range(PROCESSES)]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    thread_writers: dict[str, LedgerWriter] = {}
    errors: list[BaseException] = []
    go = threading.Barrier(THREADS + 1)

    def in_thread(session: str) -> None:
        try:
            go.wait()
            thread_writers[session] = write_rows(path, session, ROWS_PER_THREAD, CONTENDED_BATCH)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=in_thread, args=(f"thread-{n}",)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    for process in processes:  # every writer starts now
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    go.wait()
    outcomes = [process.communicate(timeout=120) for process in processes]
    for thread in threads:
        thread.join(120)
    elapsed = time.monotonic() - started

    assert errors == []
    for process, (stdout, stderr) in zip(processes, outcomes, strict=True):
        assert (process.returncode, stderr) == (0, "")
        assert json.loads(stdout) == {
            "submitted": ROWS_PER_PROCESS,
            "written": ROWS_PER_PROCESS,
            "failure": None,
        }
    for writer in thread_writers.values():
        assert (writer.written, writer.failure) == (ROWS_PER_THREAD, None)
    expected = {f"process-{n}": ROWS_PER_PROCESS for n in range(PROCESSES)}
    expected.update({f"thread-{n}": ROWS_PER_THREAD for n in range(THREADS)})
    assert rows_by_session(path) == expected
    assert integrity(path) == "ok"
    print(f"{sum(expected.values())} rows from {PROCESSES + THREADS} writers in {elapsed:.2f} s")


def test_a_ledger_held_by_another_writer_is_written_once_it_is_released(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    holder = connect(path)
    assert holder is not None
    holder.isolation_level = None
    writer = LedgerWriter(path)
    writer.start()
    holder.execute("BEGIN IMMEDIATE")
    writer.submit(make_record(request_id="req_waiting"))
    time.sleep(0.5)  # the writer is now waiting for the lock
    assert rows_by_session(path) == {}
    holder.execute("COMMIT")

    assert writer.close() is True
    assert rows_by_session(path) == {"0" * 32: 1}


def test_a_lock_that_outlasts_close_gives_up_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "usage.sqlite3"
    holder = connect(path)
    assert holder is not None
    holder.isolation_level = None
    writer = LedgerWriter(path)
    writer.start()
    holder.execute("BEGIN IMMEDIATE")
    writer.submit(make_record())
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="cc_nemo.ledger"):
        closed = writer.close(timeout=0.5)
    waited = time.monotonic() - started
    holder.execute("ROLLBACK")

    assert closed is False
    # At most one busy_timeout past the deadline: SQLite's own wait is not interruptible.
    assert waited < 0.5 + WRITER_BUSY_TIMEOUT_MS / 1000 + 1
    assert writer.failure == "database is locked"
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "kept in memory only" in warning.getMessage()


@pytest.mark.parametrize("kind", ["parent-is-a-file", "not-a-database"])
def test_an_unusable_ledger_costs_one_warning_and_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    if kind == "parent-is-a-file":
        (tmp_path / "blocker").write_text("a file where a directory should be")
        path = tmp_path / "blocker" / "usage.sqlite3"
    else:
        path = tmp_path / "usage.sqlite3"
        path.write_bytes(b"this is not SQLite " * 100)
    writer = LedgerWriter(path)
    with caplog.at_level(logging.WARNING, logger="cc_nemo.ledger"):
        writer.start()
        for n in range(50):
            assert writer.submit(make_record(request_id=f"req_{n}")) is True
        assert writer.close() is False

    assert (writer.submitted, writer.written) == (50, 0)
    assert writer.failure
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert str(path) in warning.getMessage()
