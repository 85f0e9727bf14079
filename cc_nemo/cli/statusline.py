"""`cc-proxy statusline`: the one line Claude Code's `statusLine` setting shows under the prompt.

Claude Code runs the command after every message, a new process each time, with the session's
JSON on stdin: so this module imports only the standard library and the ledger's stdlib-only
location (no typer, rich or aiohttp, not even the catalog, whose dataclasses cost more than the rest together; bench/statusline.py), and
the console entry (`cc_nemo.cli.entry`) reaches it before typer is imported.

The line: the model, this Claude Code session's cost and tokens from the usage ledger (the rows
whose `claude_session` is the JSON's `session_id`), the context used against the window, and
today's cost over every session. The window is the JSON's `context_window_size`, which
`cc-proxy run` sets to the model's real window (CLAUDE_CODE_MAX_CONTEXT_TOKENS); only when
claude was not started by `run` and names a model Claude Code cannot know is the catalog read.

A status line must never show a traceback or stay blank: any input gives one line and exit 0.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time

from cc_nemo.ledger.location import ledger_path_in

TYPE_CHECKING = False  # typing itself costs milliseconds this command does not have
if TYPE_CHECKING:
    from typing import Any

# Mirrors cc_nemo.proxy.routing, which costs too much to import here (it brings the catalog);
# tests/cli/test_statusline.py checks they agree.
DISCOVERY_PREFIX = "claude-cf-"
# Set by `cc-proxy run` in claude's environment, which the status line command inherits.
ENV_MAX_CONTEXT = "CLAUDE_CODE_MAX_CONTEXT_TOKENS"
# Also set by `run`: every catalog alias's window ("nemotron=256000,kimi=262144,…"), so after a
# `/model` switch the line shows the new model's window, which Claude Code itself does not know.
ENV_MODEL_WINDOWS = "CC_PROXY_MODEL_WINDOWS"
MAX_STDIN_BYTES = 1 << 20
# A writer holds the lock for milliseconds; a status line must not wait on it for long.
LEDGER_TIMEOUT_S = 0.25
SEPARATOR = " │ "
FALLBACK_NAME = "cc-proxy"


def main() -> int:
    """Read Claude Code's JSON from stdin, print the line; always exit 0."""
    try:
        line = render(read_stdin(), dict(os.environ), time.time())
    except Exception:  # a status line never shows a traceback (see the module docstring)
        line = FALLBACK_NAME
    try:
        # UTF-8 whatever the locale says: claude decodes it so, and "│" must never fail.
        sys.stdout.buffer.write((line + "\n").encode("utf-8"))
        sys.stdout.flush()
    except (OSError, AttributeError, ValueError):
        pass  # claude closed the pipe (nobody left to show it to), or no stdout at all
    return 0


def read_stdin() -> dict[str, Any]:
    """The JSON object on stdin; {} for a terminal, garbage, or anything but an object."""
    stream = sys.stdin
    if stream is None or stream.isatty():
        return {}
    try:
        data = stream.buffer.read(MAX_STDIN_BYTES)
        value = json.loads(data) if data.strip() else {}
    except (ValueError, OSError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def render(status: dict[str, Any], env: dict[str, str], now: float) -> str:
    """The status line for Claude Code's `status` JSON, from the ledger in `env`'s location."""
    session_id = _text(status.get("session_id"))
    model = _mapping(status.get("model"))
    model_id = _text(model.get("id"))
    alias = model_id.removeprefix(DISCOVERY_PREFIX) or _text(model.get("display_name"))
    # Anthropic's own models (the line installed for good, claude not through cc-proxy) go by
    # the name Claude Code gives them.
    shown = _text(model.get("display_name")) if alias.startswith("claude") else alias
    usage = read_ledger(ledger_path_in(env), session_id, local_midnight(now))
    parts = [_model_label(alias, usage, shown or alias) or FALLBACK_NAME]
    if usage is not None and usage.requests:
        parts.append(
            f"session {format_usd(usage.session_cost)}, {compact(usage.session_tokens)} tokens"
        )
    elif session_id and alias and not alias.startswith("claude"):
        # (A session on Anthropic's own models, with the line installed for good, has no
        # requests through cc-proxy to wait for.)
        parts.append("no requests yet")
    # No model, no session to speak of (empty or garbled JSON): no context either.
    context = context_part(status, env, alias) if alias else ""
    if context:
        parts.append(context)
    if usage is not None:
        parts.append(f"today {format_usd(usage.today_cost)}")
    return SEPARATOR.join(parts)


class LedgerUsage:
    """What the line needs from the ledger: this session's sums, its latest request's models
    and today's cost over every session."""

    __slots__ = ("answered", "asked", "requests", "session_cost", "session_tokens", "today_cost")

    def __init__(
        self,
        requests: int,
        session_cost: float,
        session_tokens: int,
        today_cost: float,
        asked: str | None,
        answered: str | None,
    ) -> None:
        self.requests = requests
        self.session_cost = session_cost
        self.session_tokens = session_tokens
        self.today_cost = today_cost
        self.asked = asked
        self.answered = answered


def read_ledger(path: str, session_id: str, since: float) -> LedgerUsage | None:
    """The ledger's sums, or None when there is no ledger (or it cannot be read)."""
    if not os.path.exists(path):
        return None
    try:
        # Read-only: a status line must never create or change the ledger.
        connection = sqlite3.connect(
            "file:" + _uri_path(path) + "?mode=ro", uri=True, timeout=LEDGER_TIMEOUT_S
        )
    except sqlite3.Error:
        return None
    try:
        today = connection.execute(
            "SELECT TOTAL(cost_usd) FROM requests WHERE ts >= ?", (since,)
        ).fetchone()[0]
        requests, cost, tokens = 0, 0.0, 0
        asked = answered = None
        if session_id:
            requests, cost, tokens = connection.execute(
                "SELECT COUNT(*), TOTAL(cost_usd), "
                "TOTAL(input_tokens + cache_read_tokens + output_tokens) "
                "FROM requests WHERE claude_session = ?",
                (session_id,),
            ).fetchone()
            latest = connection.execute(
                "SELECT model, answered_by FROM requests WHERE claude_session = ? "
                "ORDER BY ts DESC LIMIT 1",
                (session_id,),
            ).fetchone()
            if latest is not None:
                asked, answered = latest
        return LedgerUsage(int(requests), float(cost), int(tokens), float(today), asked, answered)
    except sqlite3.Error:
        return None
    finally:
        connection.close()


def _uri_path(path: str) -> str:
    """`path` for a SQLite `file:` URI: the characters a URI gives meaning to, escaped."""
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def local_midnight(now: float) -> float:
    """The Unix time today began, in local time."""
    today = time.localtime(now)
    return time.mktime((today.tm_year, today.tm_mon, today.tm_mday, 0, 0, 0, 0, 0, -1))


def _model_label(alias: str, usage: LedgerUsage | None, shown: str) -> str:
    """The model's name; `alias → answered` when a fallback answered the session's latest
    request for this model (after a `/model` switch, the older request no longer counts)."""
    if usage is None or not usage.answered or not usage.asked:
        return shown
    asked = usage.asked.removeprefix(DISCOVERY_PREFIX)
    if usage.answered != usage.asked and asked == alias:
        return f"{alias} → {usage.answered}"
    return shown


def context_part(status: dict[str, Any], env: dict[str, str], alias: str) -> str:
    """`context 73k of 256k (29%)`: what the next request sends, against the window."""
    context = _mapping(status.get("context_window"))
    window = _window_from_env(env.get(ENV_MODEL_WINDOWS, ""), alias) or _positive_int(
        context.get("context_window_size")
    )
    if (
        ENV_MODEL_WINDOWS not in env
        and ENV_MAX_CONTEXT not in env
        and alias
        and not alias.startswith("claude")
    ):
        # claude was not started by `cc-proxy run`, so it assumed a window for a name it does
        # not know: the catalog knows the real one (slower, but only in this case).
        window = catalog_window(alias) or window
    if window is None:
        window = _positive_int(env.get(ENV_MAX_CONTEXT))
    current = context.get("current_usage")
    used: int | None = None
    if isinstance(current, dict):
        used = sum(
            _positive_int(current.get(key)) or 0
            for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
    if window is None:
        return f"context {compact(used)}" if used else ""
    if used is None:
        return f"context {compact(window)}"
    return f"context {compact(used)} of {compact(window)} ({round(100 * used / window)}%)"


def _window_from_env(windows: str, alias: str) -> int | None:
    """`alias`'s window in CC_PROXY_MODEL_WINDOWS; None when it is not listed."""
    if not alias:
        return None
    for entry in windows.split(","):
        name, _, value = entry.partition("=")
        if name == alias:
            return _positive_int(int(value)) if value.isdigit() else None
    return None


def catalog_window(alias: str) -> int | None:
    """The window of a catalog or config.toml model; None when it is not one of ours."""
    try:
        from cc_nemo.settings.catalog import Catalog
        from cc_nemo.settings.config import load_config

        return Catalog.build(load_config().user_models.values()).resolve(alias).context_window
    except Exception:  # unknown model, unreadable config: the JSON's window stands
        return None


SMALLEST_USD = 0.0001


def format_usd(amount: float) -> str:
    """$1,234.56; under a cent, four decimals, so a short session is not "$0.00"; under
    $0.0001, "<$0.0001" (a few test tokens), never a "$0.0000" that reads as free."""
    if amount == 0:
        return "$0.00"
    if 0 < amount < SMALLEST_USD:
        return f"<${SMALLEST_USD}"
    if abs(amount) < 0.01:
        return f"${amount:.4f}"
    return f"${amount:,.2f}"


def compact(count: int | None) -> str:
    """950, 12.3k, 256k, 1.23M: a token count that fits a status line."""
    if count is None:
        return "?"
    if count < 1000:
        return str(count)
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1000, "k")):
        if count >= size:
            value = count / size
            text = f"{value:.3g}" if value < 100 else f"{value:.0f}"
            return text + suffix
    return str(count)  # pragma: no cover - the loop always returns


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number > 0 else None


if __name__ == "__main__":
    sys.exit(main())
