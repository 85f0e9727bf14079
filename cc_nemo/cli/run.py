"""The `run` and `serve` commands, registered on the main typer app by `cli.py`.

Only typer and the stdlib are imported here: `cc-proxy run` must reach the claude spawn
without paying for aiohttp, rich or keyring (see launcher.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import typer
from typer.core import TyperCommand

from cc_nemo.cli.common import note
from cc_nemo.cli.model_options import ModelArgument, SmallModelOption, SubagentModelOption
from cc_nemo.errors import UserError

if TYPE_CHECKING:
    from cc_nemo.settings.runtime import ProxySettings

CLAUDE_ARGS_KEY = "cc_proxy.claude_args"
TOKEN_ENV_VAR = "CC_PROXY_TOKEN"

FirstRunAction = Literal["offer", "fail", "need-npm"]


class ClaudePassThroughCommand(TyperCommand):
    """A command whose arguments after the first `--` go to claude untouched, even ones that
    look like our own options (`-- --model x`, `-- --help`)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if "--" in args:
            split = args.index("--")
            ctx.meta[CLAUDE_ARGS_KEY] = args[split + 1 :]
            args = args[:split]
        else:
            ctx.meta[CLAUDE_ARGS_KEY] = []
        return super().parse_args(ctx, args)


def run_command(
    ctx: typer.Context,
    model: ModelArgument = None,
    small_model: SmallModelOption = None,
    subagent_model: SubagentModelOption = None,
    claude: str | None = typer.Option(
        None,
        "--claude",
        metavar="PATH",
        help="The claude executable (default: $CC_PROXY_CLAUDE, else `claude` on PATH).",
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print no session summary when claude exits."
    ),
    statusline: bool | None = typer.Option(
        None,
        "--statusline/--no-statusline",
        help="Show `cc-proxy statusline` under claude's prompt (model, session cost, context, "
        "today's cost) unless claude's settings have a statusLine "
        "(default: `statusline` in config.toml, else off).",
    ),
) -> None:
    """Run Claude Code on MODEL through a private proxy; arguments after `--` go to claude.

    Example: cc-proxy run nemotron -- -p "explain this repo" --output-format json
    """
    import os
    import secrets

    from cc_nemo.launch import launcher
    from cc_nemo.settings.resolve import resolve_proxy_settings

    claude_args = [*ctx.args, *ctx.meta.get(CLAUDE_ARGS_KEY, [])]
    if model is not None and model.startswith("-"):
        # An option click did not know landed in MODEL's place (`cc-proxy run -p "fix it"`):
        # no model was given, and the option is claude's.
        claude_args.insert(0, model)
        model = None

    def resolve() -> ProxySettings:
        return resolve_proxy_settings(
            model,
            session_token=secrets.token_urlsafe(32),
            small_model=small_model,
            subagent_model=subagent_model,
        )

    try:
        settings = _settings_or_first_login(resolve)
    except UserError as exc:
        hinted = _with_double_dash_hint(exc, model, ctx.args)
        if hinted is exc:
            raise
        raise hinted from exc
    executable = _claude_or_first_install(claude, os.environ)
    if _statusline_wanted(statusline):
        claude_args = _with_statusline(claude_args, explicit=statusline is not None)

    def launch_for(base_url: str) -> launcher.ClaudeLaunch:
        from cc_nemo.launch.claude_env import build_claude_env

        env = build_claude_env(os.environ, settings, base_url)
        return launcher.ClaudeLaunch(executable, claude_args, env)

    code = launcher.run_claude(settings, launch_for, quiet=quiet)
    raise typer.Exit(code)


def _statusline_wanted(flag: bool | None) -> bool:
    """--statusline/--no-statusline, else config.toml's `statusline`, else off."""
    if flag is not None:
        return flag
    from cc_nemo.settings.config import load_config

    return bool(load_config().statusline)


def _with_statusline(claude_args: list[str], *, explicit: bool) -> list[str]:
    """claude's arguments with our status line in `--settings`, unless the user has one; the
    user who asked with --statusline hears which one is kept."""
    import os
    from pathlib import Path

    from cc_nemo.cli.statusline_setting import current_statusline_command, with_statusline

    result = with_statusline(
        claude_args,
        current_statusline_command(),
        env=os.environ,
        home=Path.home(),
        cwd=Path.cwd(),
    )
    if result.kept_reason and explicit:
        note(f"cc-proxy: keeping your own status line: {result.kept_reason}")
    return result.claude_args


def on_terminal() -> tuple[bool, bool]:
    """(stdin, stderr) are terminals: only then is there someone to answer a question."""
    return sys.stdin.isatty(), sys.stderr.isatty()


def first_run_action(
    missing: Literal["credentials", "claude"],
    *,
    stdin_tty: bool,
    stderr_tty: bool,
    npm_found: bool = False,
) -> FirstRunAction:
    """What a first `run` does about something missing: offer to fix it (a person is there to
    answer), fail with the usual one line (a script or a pipe: never block on a prompt), or, for
    claude, explain that npm is needed first."""
    if not (stdin_tty and stderr_tty):
        return "fail"
    if missing == "claude" and not npm_found:
        return "need-npm"
    return "offer"


def _confirm(question: str) -> bool:
    """A [Y/n] question on stderr (stdout is claude's); a closed stdin answers no."""
    try:
        return bool(typer.confirm(question, default=True, err=True))
    except typer.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        sys.stderr.write("\n")
        return False


def _settings_or_first_login(resolve: Callable[[], ProxySettings]) -> ProxySettings:
    """The session's settings; with none stored and a person at the terminal, the login flow
    first, so a fresh machine needs only `cc-proxy run`."""
    from cc_nemo.settings.resolve import NO_CREDENTIALS

    try:
        return resolve()
    except UserError as exc:
        if exc.message != NO_CREDENTIALS:
            raise
        stdin_tty, stderr_tty = on_terminal()
        action = first_run_action("credentials", stdin_tty=stdin_tty, stderr_tty=stderr_tty)
        if action != "offer" or not _confirm("No credentials found. Log in now?"):
            raise
    from cc_nemo.cli.login import login_flow

    login_flow()
    return resolve()


def _claude_or_first_install(explicit: str | None, env: Mapping[str, str]) -> str:
    """The claude to start; when there is none at all and a person is at the terminal, offer to
    install the tested Claude Code into cc-proxy's data directory with npm."""
    from cc_nemo.launch import claude_install, launcher

    try:
        return launcher.find_claude(explicit, env)
    except launcher.ClaudeNotFound:
        stdin_tty, stderr_tty = on_terminal()
        action = first_run_action(
            "claude",
            stdin_tty=stdin_tty,
            stderr_tty=stderr_tty,
            npm_found=claude_install.find_npm(env) is not None,
        )
        if action == "need-npm":
            raise UserError(
                "Claude Code is not installed and npm is not on PATH: install Node.js 18 or "
                "newer (it brings npm) and run again, or pass --claude PATH"
            ) from None
        version = claude_install.TESTED_CLAUDE_CODE
        directory = claude_install.install_dir()
        if action != "offer" or not _confirm(
            f"Claude Code is not installed. Install Claude Code {version} for cc-proxy "
            f"into {directory} with npm now?"
        ):
            raise
    note(f"Installing {claude_install.CLAUDE_CODE_PACKAGE}@{version} into {directory} …")
    path = claude_install.install_claude(env, directory=directory, output=_stderr_fd())
    note(f"Installed Claude Code {version}: {path}")
    return str(path)


def _stderr_fd() -> int | None:
    """Where npm's output goes: our stderr, since stdout is claude's (None: inherit, when stderr
    is not a real file, as under a test runner)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _with_double_dash_hint(error: UserError, model: str | None, extras: list[str]) -> UserError:
    """`cc-proxy run "fix it" -p` makes "fix it" the model; say where claude's words go."""
    from cc_nemo.settings.catalog import UnknownModelError

    if model is None or not extras or not isinstance(error.__cause__, UnknownModelError):
        return error
    return UserError(
        f"{error.message} (claude's own arguments go after `--`: cc-proxy run [MODEL] -- -p ...)",
        exit_code=error.exit_code,
    )


def serve_command(
    model: ModelArgument = None,
    port: int = typer.Option(0, "--port", help="Port to listen on (0: a free one)."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind; non-loopback needs --allow-remote."
    ),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Allow a non-loopback --host (needs an explicit token)."
    ),
    token_stdin: bool = typer.Option(
        False,
        "--token-stdin",
        help=f"Read the client token from stdin (else ${TOKEN_ENV_VAR}, else a random one).",
    ),
    small_model: SmallModelOption = None,
    subagent_model: SubagentModelOption = None,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the export lines."),
) -> None:
    """Run the proxy in the foreground for IDE extensions, the Agent SDK or another terminal.

    Prints `export ANTHROPIC_BASE_URL=... ANTHROPIC_AUTH_TOKEN=...` lines; Ctrl-C stops it.
    """
    import dataclasses
    import os
    import sys

    from cc_nemo.launch import launcher
    from cc_nemo.settings.resolve import resolve_proxy_settings

    token, explicit = session_token_for_serve(
        read_stdin=sys.stdin.readline if token_stdin else None, env=os.environ
    )
    launcher.check_serve_host(host, allow_remote=allow_remote, token=token, explicit=explicit)
    settings = resolve_proxy_settings(
        model, session_token=token, small_model=small_model, subagent_model=subagent_model
    )
    if allow_remote:
        settings = dataclasses.replace(settings, allow_remote=True)
    code = launcher.serve(settings, host=host, port=port, base_env=os.environ, quiet=quiet)
    raise typer.Exit(code)


def session_token_for_serve(
    *, read_stdin: Callable[[], str] | None, env: Mapping[str, str]
) -> tuple[str, bool]:
    """The token clients must present, and whether the user chose it: stdin (when
    --token-stdin), else $CC_PROXY_TOKEN, else a fresh random one."""
    if read_stdin is not None:
        token = read_stdin().strip()
        if not token:
            raise UserError("--token-stdin: no token on stdin")
        return token, True
    token = env.get(TOKEN_ENV_VAR, "").strip()
    if token:
        return token, True
    import secrets

    return secrets.token_urlsafe(32), False


def register(app: typer.Typer) -> None:
    """Add `run` and `serve` to the main app."""
    app.command(
        "run",
        cls=ClaudePassThroughCommand,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(run_command)
    app.command("serve")(serve_command)
