"""The `cc-proxy` command line: parse, dispatch, and turn every failure into one line.

Imports stay light here (typer + stdlib + our small modules) so `cc-proxy --help`
is fast; each command imports what it needs when it runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

try:  # typer 0.28 ships its own copy of click; earlier releases use click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_errors  # type: ignore[no-redef]

from cc_nemo import __version__
from cc_nemo.cli import login as cli_login
from cc_nemo.cli import logs as cli_logs
from cc_nemo.cli import models as cli_models
from cc_nemo.cli import run as cli_run
from cc_nemo.cli import status as cli_status
from cc_nemo.cli import usage as cli_usage
from cc_nemo.cli.common import PROG, error_line
from cc_nemo.cli.model_options import complete_model_alias
from cc_nemo.errors import UserError

__all__ = ["app", "complete_model_alias", "main"]

DEBUG_ENV = "CC_PROXY_DEBUG"

app = typer.Typer(
    name=PROG,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals can hold tokens
    # Plain click help: rendering it with rich costs ~80 ms of imports on every `--help`.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"{PROG} {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Run Claude Code on Cloudflare Workers AI (or any OpenAI-compatible model) through a local
    translating proxy.

    Start with `cc-proxy login`, then `cc-proxy run nemotron`.
    """


cli_login.register(app)
cli_status.register(app)
cli_models.register(app)
cli_run.register(app)
cli_usage.register(app)
cli_logs.register(app)


@app.command("statusline")
def _statusline() -> None:
    """Print one status line for Claude Code's statusLine setting (its JSON on stdin): model,
    this session's cost and tokens, context used, today's cost.

    `cc-proxy run --statusline` installs it for a session; see the README to install it for good.
    """
    # The console script runs a bare `cc-proxy statusline` without typer (cc_nemo/cli/entry.py);
    # this is the same line when typer has the command line.
    from cc_nemo.cli.statusline import main as statusline_main

    raise typer.Exit(statusline_main())


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: user mistakes and crashes become one line and an exit code."""
    try:
        # Not standalone: click would print a usage mistake as a three-line block.
        result = app(
            args=list(argv) if argv is not None else None, prog_name=PROG, standalone_mode=False
        )
    except click_errors.UsageError as exc:
        _fail(_usage_mistake(exc), exc.exit_code)
    except typer.Abort:  # Ctrl-C or end of input at a prompt
        sys.stderr.write("\n")
        sys.exit(130)
    except click_errors.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except UserError as exc:
        _fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 to see the traceback)", 1)
    else:
        # typer.Exit(code) comes back as the code; a command's own return value is not one.
        if isinstance(result, int) and not isinstance(result, bool) and result != 0:
            sys.exit(result)


def _usage_mistake(exc: click_errors.UsageError) -> str:
    """The message and where help is: "No such option: --bogus (see `cc-proxy logs -h`)"."""
    command = exc.ctx.command_path if exc.ctx is not None else PROG
    return f"{exc.format_message().rstrip('.')} (see `{command} -h`)"


def _fail(message: str, exit_code: int) -> None:
    sys.stderr.write(error_line(message) + "\n")
    sys.stderr.flush()
    sys.exit(exit_code)
