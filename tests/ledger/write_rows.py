"""Write rows into a ledger from its own process, for the concurrent-writers test:
    python -m tests.ledger.write_rows PATH SESSION COUNT BATCH_MAX
It prints `ready`, waits for a line on stdin (so every writer starts at once), writes COUNT
records through a LedgerWriter, and prints what the writer reports as JSON."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from cc_nemo.ledger.writer import LedgerWriter
from tests.ledger.records import make_record


def write_rows(path: Path, session: str, count: int, batch_max: int) -> LedgerWriter:
    """COUNT records of `session`, submitted in small bursts so batches interleave with
    other writers'."""
    writer = LedgerWriter(path, batch_max=batch_max)
    writer.start()
    for n in range(count):
        writer.submit(make_record(proxy_session=session, request_id=f"req_{n}", output_tokens=n))
        if n % 10 == 9:
            time.sleep(0)  # let the writer thread take a batch
    writer.close(timeout=60)
    return writer


def main() -> int:
    path, session, count, batch_max = sys.argv[1:5]
    print("ready", flush=True)
    sys.stdin.readline()
    writer = write_rows(Path(path), session, int(count), int(batch_max))
    report = {"submitted": writer.submitted, "written": writer.written, "failure": writer.failure}
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
