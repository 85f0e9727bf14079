"""`cc-proxy run --statusline`: claude's `--settings` that shows `cc-proxy statusline`, unless
the user already has a status line.

Claude Code's own settings win over nothing we add: its user settings (`~/.claude/settings.json`,
or `$CLAUDE_CONFIG_DIR/settings.json`), the project's (`.claude/settings.json` and
`.claude/settings.local.json` in the working directory) and a `--settings` given after `--`.
When one of them has a `statusLine`, the session keeps it. claude takes one `--settings`, so
ours is merged into the user's own when they passed one."""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SETTINGS_FLAG = "--settings"
STATUSLINE_KEY = "statusLine"
CONSOLE_SCRIPT = "cc-proxy"


@dataclass(frozen=True)
class StatuslineArgs:
    """claude's arguments after the decision, and why the status line was not added (None when
    it was)."""

    claude_args: list[str]
    kept_reason: str | None


def statusline_command(argv0: str, executable: str) -> str:
    """A shell command that runs this installation's `cc-proxy statusline`: the console script
    that started this process when there is one (the fast entry), else this interpreter with
    the module (same code, a few milliseconds of `-m` more)."""
    script = os.path.abspath(argv0) if argv0 else ""
    name = os.path.basename(script)
    if name in (CONSOLE_SCRIPT, f"{CONSOLE_SCRIPT}.exe") and os.path.isfile(script):
        return f"{shlex.quote(script)} statusline"
    return f"{shlex.quote(executable)} -m cc_nemo.cli.statusline"


def current_statusline_command() -> str:
    return statusline_command(sys.argv[0] if sys.argv else "", sys.executable)


def settings_files(env: Mapping[str, str], home: Path, cwd: Path) -> list[Path]:
    """The settings files claude reads a statusLine from, user's first."""
    files = []
    config_dir = env.get("CLAUDE_CONFIG_DIR")
    if config_dir:
        files.append(Path(config_dir).expanduser() / "settings.json")
    files.append(home / ".claude" / "settings.json")
    files.append(cwd / ".claude" / "settings.json")
    files.append(cwd / ".claude" / "settings.local.json")
    return files


def has_statusline(settings: object) -> bool:
    return isinstance(settings, dict) and settings.get(STATUSLINE_KEY) is not None


def _read_json_file(path: Path) -> object:
    """A settings file's JSON; None when it is missing or claude could not read it either."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _settings_flag(claude_args: Sequence[str]) -> tuple[int, int, str] | None:
    """(index of the flag, index of its value, the value) of the last `--settings` before a
    bare `--`; the last one is the one claude keeps."""
    found = None
    index = 0
    while index < len(claude_args):
        arg = claude_args[index]
        if arg == "--":
            break
        if arg == SETTINGS_FLAG and index + 1 < len(claude_args):
            found = (index, index + 1, claude_args[index + 1])
            index += 2
            continue
        if arg.startswith(SETTINGS_FLAG + "="):
            found = (index, index, arg.split("=", 1)[1])
        index += 1
    return found


def with_statusline(
    claude_args: Sequence[str],
    command: str,
    *,
    env: Mapping[str, str],
    home: Path,
    cwd: Path,
) -> StatuslineArgs:
    """claude's arguments with our status line in `--settings`, or unchanged, with the reason,
    when the user has their own."""
    args = list(claude_args)
    for path in settings_files(env, home, cwd):
        if has_statusline(_read_json_file(path)):
            return StatuslineArgs(args, f"{path} has a statusLine")
    ours = {STATUSLINE_KEY: {"type": "command", "command": command}}
    flag = _settings_flag(args)
    if flag is None:
        return StatuslineArgs([SETTINGS_FLAG, json.dumps(ours), *args], None)
    flag_index, value_index, value = flag
    text = value.strip()
    if text.startswith("{"):
        try:
            given: object = json.loads(text)
        except ValueError:
            return StatuslineArgs(args, "the --settings given to claude is not valid JSON")
    else:
        given = _read_json_file(cwd / Path(value).expanduser())
        if given is None:
            return StatuslineArgs(args, f"cannot read the --settings file {value}")
    if not isinstance(given, dict):
        return StatuslineArgs(args, "the --settings given to claude is not a JSON object")
    if has_statusline(given):
        return StatuslineArgs(args, "the --settings given to claude has a statusLine")
    merged = json.dumps({**given, **ours})
    if flag_index == value_index:
        args[flag_index] = f"{SETTINGS_FLAG}={merged}"
    else:
        args[value_index] = merged
    return StatuslineArgs(args, None)
