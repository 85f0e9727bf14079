"""Where the ledger lives, with the standard library only: the status line, which Claude Code
runs after every message, finds it without importing platformdirs on Linux (a fifth of its
time budget) or the schema's dataclasses."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

APP_NAME = "cc-proxy"
LEDGER_FILE = "usage.sqlite3"
# Overrides the ledger's location (tests, or a user who keeps it on another disk).
ENV_LEDGER_PATH = "CC_PROXY_LEDGER"


def ledger_path_in(env: Mapping[str, str]) -> str:
    """`$CC_PROXY_LEDGER`, else `usage.sqlite3` in cc-proxy's data directory. On Linux that is
    the XDG rule, three lines; elsewhere platformdirs decides."""
    override = env.get(ENV_LEDGER_PATH)
    if override:
        return override
    if sys.platform == "linux" and "ANDROID_ROOT" not in env:
        base = env.get("XDG_DATA_HOME", "")
        if not os.path.isabs(base):
            base = os.path.join(os.path.expanduser("~"), ".local", "share")
        return os.path.join(base, APP_NAME, LEDGER_FILE)
    import platformdirs

    return os.path.join(platformdirs.user_data_dir(APP_NAME, appauthor=False), LEDGER_FILE)
