"""Claude Code installed by cc-proxy itself: the tested version, with npm, into cc-proxy's own
data directory (never a global install, never sudo), for a machine that has no `claude` yet.

Only the stdlib at import time: `cc-proxy run` looks here on its way to spawning claude.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from cc_nemo.errors import UserError

# The Claude Code release cc-proxy's translation was last checked against (docs/wire.md);
# a newer one usually works, but this is the one a first run installs.
TESTED_CLAUDE_CODE = "2.1.332"
CLAUDE_CODE_PACKAGE = "@anthropic-ai/claude-code"
APP_NAME = "cc-proxy"


def install_dir() -> Path:
    """Where cc-proxy keeps its own Claude Code: <user data dir>/cc-proxy/claude-code."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "claude-code"


def bin_path(directory: Path) -> Path:
    """The `claude` that `npm install --prefix directory` puts in place."""
    return directory / "node_modules" / ".bin" / "claude"


def installed_claude(directory: Path | None = None) -> Path | None:
    """cc-proxy's own claude, if a previous first run installed it."""
    path = bin_path(directory if directory is not None else install_dir())
    return path if path.is_file() and os.access(path, os.X_OK) else None


def npm_install_args(directory: Path, version: str = TESTED_CLAUDE_CODE) -> list[str]:
    """npm's arguments (after `npm`): a local install under `directory`, no audit or fund
    messages on a terminal that is about to belong to claude."""
    return [
        "install",
        "--prefix",
        str(directory),
        "--no-audit",
        "--no-fund",
        f"{CLAUDE_CODE_PACKAGE}@{version}",
    ]


def find_npm(env: Mapping[str, str]) -> str | None:
    return shutil.which("npm", path=env.get("PATH"))


def manual_install_hint(directory: Path | None = None) -> str:
    """The command a user can run themselves to get the same install."""
    import shlex

    target = directory if directory is not None else install_dir()
    return "npm " + " ".join(shlex.quote(arg) for arg in npm_install_args(target))


def install_claude(
    env: Mapping[str, str],
    *,
    directory: Path | None = None,
    version: str = TESTED_CLAUDE_CODE,
    output: IO[str] | int | None = None,
) -> Path:
    """Install Claude Code `version` under `directory` with npm and return its `claude`.

    npm's output goes to `output` (the caller passes stderr: stdout is claude's); a failure is
    a UserError naming the command to retry by hand."""
    target = directory if directory is not None else install_dir()
    npm = find_npm(env)
    if npm is None:
        raise UserError(
            "npm is not on PATH: install Node.js 18 or newer (it brings npm), then run again"
        )
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {target}: {exc.strerror or exc}") from exc
    # An argv list, no shell; stdin closed so npm never waits on a question nobody sees.
    try:
        done = subprocess.run(
            [npm, *npm_install_args(target, version)],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            check=False,
        )
    except OSError as exc:
        raise UserError(f"cannot run npm ({npm}): {exc.strerror or exc}") from exc
    if done.returncode != 0:
        raise UserError(
            f"npm could not install Claude Code (exit {done.returncode}); "
            f"see its output above, or run it yourself: {manual_install_hint(target)}"
        )
    found = installed_claude(target)
    if found is None:
        raise UserError(f"npm finished but {bin_path(target)} is not there")
    return found
