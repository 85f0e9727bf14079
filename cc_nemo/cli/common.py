"""Small helpers shared by the CLI command modules: messages, prompts, rich console."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from cc_nemo.errors import UserError
from cc_nemo.settings.credentials import redact

if TYPE_CHECKING:
    from rich.console import Console

PROG = "cc-proxy"


def note(message: str) -> None:
    """A progress or status line on stderr, so stdout stays clean for data (--json)."""
    sys.stderr.write(redact(message) + "\n")
    sys.stderr.flush()


def warn(message: str) -> None:
    note(f"{PROG}: warning: {message}")


def error_line(message: str) -> str:
    """The single line a failed command prints; secrets scrubbed, no newlines."""
    return f"{PROG}: error: {' '.join(redact(message).split())}"


def console() -> Console:
    """A rich console on the current stdout (created per call so test runners can capture it)."""
    from rich.console import Console

    # Piped output has no width to fit: do not fold tables into 80 columns.
    width = None if sys.stdout.isatty() else 200
    return Console(file=sys.stdout, highlight=False, soft_wrap=False, width=width)


def ask(text: str, *, secret: bool = False, default: str | None = None, flag: str = "") -> str:
    """Prompt for a value; a closed stdin becomes a UserError naming the flag to use instead."""
    try:
        answer = typer.prompt(
            text,
            default=default,
            hide_input=secret,
            show_default=default is not None and not secret,
            err=True,
        )
    except typer.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        sys.stderr.write("\n")  # end the unanswered prompt's line
        hint = f"; pass {flag} when running without a terminal" if flag else ""
        raise UserError(f"no input for the prompt (stdin is closed){hint}") from None
    return str(answer).strip()


def ask_optional(text: str, *, secret: bool = False) -> str:
    """Prompt for a value the user may skip by pressing Enter."""
    return ask(text, secret=secret, default="")
