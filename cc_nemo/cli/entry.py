"""The `cc-proxy` console script: `cc-proxy statusline` runs without importing typer.

Claude Code runs the status line command after every message, so that one command skips the
typer app (about 60 ms of imports); every other command, and `statusline` with any option,
goes through `cc_nemo.cli.main`, which also lists `statusline` in `--help`."""

from __future__ import annotations

import sys

STATUSLINE_COMMAND = "statusline"


def main() -> int | None:
    if sys.argv[1:] == [STATUSLINE_COMMAND]:
        from cc_nemo.cli.statusline import main as statusline

        return statusline()
    from cc_nemo.cli.main import main as full_cli

    full_cli()
    return None
