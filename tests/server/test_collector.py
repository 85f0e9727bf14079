"""The collector settled once the proxy serves in a process of its own (proxy/memory.py,
docs/architecture.md, "Memory and the collector")."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent

# `serve`'s own loop (launch.launcher.serve_forever), stopped by SIGTERM from `announce`, which
# reports the collector's state as the proxy begins to serve.
SERVE_AND_REPORT = textwrap.dedent(
    """
    import asyncio, gc, json, os, signal, socket
    from cc_nemo.launch.launcher import serve_forever
    from pathlib import Path
    from cc_nemo.proxy.usage import UsageLedger
    from tests.fixtures import proxy_settings

    before = {"frozen": gc.get_freeze_count(), "young": gc.get_threshold()[0]}
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()

    def announce():
        after = {"frozen": gc.get_freeze_count(), "young": gc.get_threshold()[0]}
        print(json.dumps({"before": before, "after": after}), flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    asyncio.run(
        serve_forever(
            proxy_settings("http://127.0.0.1:9"),
            sock,
            ledger=UsageLedger(Path(os.environ["CC_PROXY_LEDGER"])),
            announce=announce,
        )
    )
    """
)


def test_serving_moves_start_up_out_of_the_collectors_view(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SERVE_AND_REPORT],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "CC_PROXY_LEDGER": str(tmp_path / "usage.sqlite3"),
            "HOME": str(tmp_path),
            "PATH": "/usr/bin:/bin",
        },
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["before"]["frozen"] == 0
    assert report["before"]["young"] < 5000  # CPython's own default
    # Modules, the app and the catalog: tens of thousands of objects, never walked again.
    assert report["after"]["frozen"] > 10_000
    assert report["after"]["young"] == 5000
