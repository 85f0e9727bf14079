"""`cc-proxy run` and `cc-proxy serve`: the proxy's and claude's lifetimes, signals, exit code.

Start-up is ordered for speed: the listening socket is bound with the stdlib first, claude is
spawned at once (it needs over a second before its first request; until then its connections
wait in the listen backlog), and only then is aiohttp imported and the proxy served on that
socket. Nothing on the path to the spawn imports aiohttp or rich.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cc_nemo.errors import UserError
from cc_nemo.proxy.loopback import is_loopback

if TYPE_CHECKING:
    from cc_nemo.proxy.app import RunningProxy
    from cc_nemo.proxy.usage import UsageLedger
    from cc_nemo.settings.runtime import ProxySettings

log = logging.getLogger(__name__)

CLAUDE_ENV_VAR = "CC_PROXY_CLAUDE"
INSTALL_HINT = "npm install -g @anthropic-ai/claude-code"
LOOPBACK_HOST = "127.0.0.1"
# Connections claude opens before the proxy serves queue here; claude opens a handful at most.
LISTEN_BACKLOG = 128
# After forwarding SIGTERM/SIGHUP, how long claude may take to save its session before SIGKILL.
TERMINATE_GRACE_S = 10.0
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
# A token guarding a port other machines can reach must not be guessable.
MIN_REMOTE_TOKEN_LENGTH = 16


class ClaudeNotFound(UserError):
    """No claude anywhere cc-proxy looks; `run` may offer to install one."""


@dataclass(frozen=True)
class ClaudeLocation:
    """The claude executable and which lookup found it (shown by `cc-proxy status`)."""

    path: str
    source: str  # "--claude", CLAUDE_ENV_VAR, "PATH" or DATA_DIR_SOURCE


DATA_DIR_SOURCE = "cc-proxy's data dir"


def locate_claude(explicit: str | None, env: Mapping[str, str]) -> ClaudeLocation:
    """The claude executable: `--claude PATH`, else $CC_PROXY_CLAUDE, else `claude` on PATH,
    else the one a first run installed in cc-proxy's data directory."""
    from cc_nemo.launch.claude_install import installed_claude

    wanted = explicit or env.get(CLAUDE_ENV_VAR) or ""
    source = "--claude" if explicit else CLAUDE_ENV_VAR
    if wanted:
        found = shutil.which(wanted, path=env.get("PATH"))
        if found is None:
            raise UserError(f"{source} points at {wanted!r}, which is not an executable file")
        return ClaudeLocation(found, source)
    found = shutil.which("claude", path=env.get("PATH"))
    if found is not None:
        return ClaudeLocation(found, "PATH")
    own = installed_claude()
    if own is not None:
        return ClaudeLocation(str(own), DATA_DIR_SOURCE)
    raise ClaudeNotFound(
        f"Claude Code is not installed (no `claude` on PATH): install it with `{INSTALL_HINT}`, "
        f"let `cc-proxy run` install it from a terminal, or pass --claude PATH"
    )


def find_claude(explicit: str | None, env: Mapping[str, str]) -> str:
    """The path of the claude `locate_claude` finds."""
    return locate_claude(explicit, env).path


def exit_code_of(returncode: int) -> int:
    """A shell-style exit status: a process killed by signal N exits 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def open_listen_socket(host: str = LOOPBACK_HOST, port: int = 0) -> socket.socket:
    """A bound, listening TCP socket; port 0 asks the kernel for a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def base_url_for(host: str, port: int) -> str:
    """The URL claude (or another client) uses to reach the proxy."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def log_file_path(settings: ProxySettings) -> Path:
    """Where this session logs: the settings' file, else the per-user log directory."""
    if settings.log_file is not None:
        return settings.log_file
    from cc_nemo.settings.config import proxy_log_path

    return proxy_log_path()


@contextlib.contextmanager
def logging_to_file(settings: ProxySettings) -> Iterator[Path]:
    """Send every log record (ours, aiohttp's, asyncio's, warnings) to the session's log file,
    secrets redacted, and nothing to the terminal, which belongs to claude."""
    from cc_nemo.proxy.logs import close_logging, configure_logging, secret_values

    path = log_file_path(settings)
    secrets = secret_values(settings.session_token, settings.provider.headers)
    try:
        # cc_nemo's, aiohttp's and asyncio's loggers; the server keeps this for the session.
        own = configure_logging(path, secrets=secrets)
    except OSError as exc:
        raise UserError(f"cannot write the log file {path}: {exc.strerror or exc}") from exc
    root = logging.getLogger()
    saved = (root.level, logging.lastResort, logging.raiseExceptions)
    # Anything else (py.warnings, other libraries) through the root logger, into the same
    # handler: one writer, so a rotation never leaves a second one on the renamed file.
    root.addHandler(own)
    root.setLevel(logging.INFO)
    # A record with no handler, or a failing handler, would otherwise be printed on stderr.
    logging.lastResort = None
    logging.raiseExceptions = False
    logging.captureWarnings(True)
    try:
        yield path
    finally:
        logging.captureWarnings(False)
        root.removeHandler(own)
        close_logging(own)
        root.level, logging.lastResort, logging.raiseExceptions = saved


def _send(process: asyncio.subprocess.Process, sig: int) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)


class _SignalRelay:
    """While claude runs: SIGINT is ignored (the terminal delivers it to claude too, and claude
    decides what Ctrl-C means), SIGTERM and SIGHUP are passed on to claude, then SIGKILL follows
    if claude has not exited after a grace period.

    Handlers are asyncio ones, not SIG_IGN: a handled signal is reset to its default in the
    child at exec, whereas an ignored one would stay ignored in claude."""

    def __init__(self, loop: asyncio.AbstractEventLoop, grace_s: float) -> None:
        self._loop = loop
        self._grace_s = grace_s
        self._process: asyncio.subprocess.Process | None = None
        self._pending: list[int] = []
        self._kill_timer: asyncio.TimerHandle | None = None

    def install(self) -> None:
        self._loop.add_signal_handler(signal.SIGINT, self._ignore)
        for sig in FORWARDED_SIGNALS:
            self._loop.add_signal_handler(sig, self._forward, sig)

    def attach(self, process: asyncio.subprocess.Process) -> None:
        """Start relaying to `process`, delivering any signal that arrived before it existed."""
        self._process = process
        for sig in self._pending:
            self._forward(sig)
        self._pending.clear()

    def uninstall(self) -> None:
        for sig in (signal.SIGINT, *FORWARDED_SIGNALS):
            self._loop.remove_signal_handler(sig)
        if self._kill_timer is not None:
            self._kill_timer.cancel()

    def _ignore(self) -> None:
        log.info("SIGINT received; left to claude")

    def _forward(self, sig: int) -> None:
        if self._process is None:
            self._pending.append(sig)
            return
        log.info("forwarding %s to claude", signal.Signals(sig).name)
        _send(self._process, sig)
        if self._kill_timer is None:
            self._kill_timer = self._loop.call_later(self._grace_s, self._kill)

    def _kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            log.warning("claude still running %.0f s after a signal; killing it", self._grace_s)
            _send(self._process, signal.SIGKILL)


@dataclass(frozen=True)
class ClaudeLaunch:
    """What to run: the executable, its arguments (verbatim), and its complete environment."""

    executable: str
    args: Sequence[str]
    env: Mapping[str, str]


@dataclass(frozen=True)
class SessionResult:
    """How a `run` session ended: claude's exit status and what the proxy served."""

    exit_code: int
    ledger: UsageLedger


async def run_session(
    settings: ProxySettings,
    launch: ClaudeLaunch,
    sock: socket.socket,
    *,
    terminate_grace_s: float = TERMINATE_GRACE_S,
) -> SessionResult:
    """Spawn claude, serve the proxy on `sock` until claude exits, stop the proxy, and return
    claude's exit status (128+N if a signal killed it)."""
    loop = asyncio.get_running_loop()
    relay = _SignalRelay(loop, terminate_grace_s)
    relay.install()
    try:
        try:
            # An argv list, never a shell: each claude argument arrives exactly as given.
            # stdio is inherited, so claude's TUI owns the terminal.
            process = await asyncio.create_subprocess_exec(
                launch.executable, *launch.args, env=dict(launch.env)
            )
        except OSError as exc:
            raise UserError(
                f"cannot start claude ({launch.executable}): {exc.strerror or exc}"
            ) from exc
        relay.attach(process)
        log.info("claude started, pid %d", process.pid)
        # Everything below imports aiohttp; claude is already starting up meanwhile.
        from cc_nemo.proxy.usage import UsageLedger

        ledger = UsageLedger()
        proxy = await _serve_or_stop_claude(settings, sock, ledger, process, terminate_grace_s)
        try:
            returncode = await process.wait()
            log.info("claude exited with %d; stopping the proxy", returncode)
        finally:
            await proxy.stop()
        return SessionResult(exit_code_of(returncode), ledger)
    finally:
        relay.uninstall()


async def _serve_or_stop_claude(
    settings: ProxySettings,
    sock: socket.socket,
    ledger: UsageLedger,
    process: asyncio.subprocess.Process,
    terminate_grace_s: float,
) -> RunningProxy:
    """Serve the proxy on the pre-bound socket; if that fails, claude has nothing to talk to,
    so stop it rather than leave it retrying against a dead port."""
    try:
        from cc_nemo.proxy.app import start_proxy
        from cc_nemo.proxy.memory import settle_for_serving

        proxy = await start_proxy(settings, ledger=ledger, sock=sock)
        settle_for_serving()
        return proxy
    except Exception as exc:
        log.exception("the proxy failed to start")
        await _stop(process, terminate_grace_s)
        raise UserError(f"the proxy failed to start: {exc} (details in the log)") from exc


async def _stop(process: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGTERM, then SIGKILL if the process is still there after `grace_s`."""
    _send(process, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace_s)
    except asyncio.TimeoutError:
        _send(process, signal.SIGKILL)
        await process.wait()


def run_claude(
    settings: ProxySettings,
    launch_for_url: Callable[[str], ClaudeLaunch],
    *,
    quiet: bool = False,
) -> int:
    """`cc-proxy run`: bind, spawn claude, serve, and on claude's exit print the summary (on
    stderr) and return its exit code."""
    sock = open_listen_socket()
    port = sock.getsockname()[1]
    launch = launch_for_url(base_url_for(LOOPBACK_HOST, port))
    try:
        with logging_to_file(settings):
            log.info("session on port %d, model %s", port, settings.main_model.model)
            result = asyncio.run(run_session(settings, launch, sock))
    finally:
        sock.close()
    if not quiet:
        # From the ledger's rows for this session (the proxy's stop flushed them).
        print(result.ledger.final_summary().render(), file=sys.stderr, flush=True)
    return result.exit_code


def check_serve_host(host: str, *, allow_remote: bool, token: str, explicit: bool) -> None:
    """A proxy reachable from other machines needs an explicit opt-in and a token the user chose
    (a random one shown on a terminal is not meant to guard a network port), long enough not
    to be guessed."""
    if is_loopback(host):
        return
    if not allow_remote:
        raise UserError(f"refusing to listen on {host} (not loopback) without --allow-remote")
    if not explicit:
        raise UserError(
            f"listening on {host} needs your own token: --token-stdin or CC_PROXY_TOKEN"
        )
    if len(token) < MIN_REMOTE_TOKEN_LENGTH:
        raise UserError(
            f"a token for a non-loopback --host needs at least {MIN_REMOTE_TOKEN_LENGTH} characters"
        )


def export_lines(variables: Mapping[str, str], unset: Sequence[str]) -> list[str]:
    """POSIX shell lines a user pastes into another terminal to reach a running proxy."""
    import shlex

    lines = [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]
    if unset:
        lines.append("unset " + " ".join(unset))
    return lines


async def serve_forever(
    settings: ProxySettings,
    sock: socket.socket,
    *,
    ledger: UsageLedger,
    announce: Callable[[], None],
) -> None:
    """Serve on `sock` in the foreground until SIGINT or SIGTERM, then stop gracefully."""
    from cc_nemo.proxy.app import start_proxy
    from cc_nemo.proxy.memory import settle_for_serving

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        proxy = await start_proxy(settings, ledger=ledger, sock=sock)
        settle_for_serving()
        try:
            announce()
            await stop.wait()
            log.info("stop requested")
        finally:
            await proxy.stop()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def serve(
    settings: ProxySettings,
    *,
    host: str,
    port: int,
    base_env: Mapping[str, str],
    quiet: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`cc-proxy serve`: print the variables a client needs, serve until Ctrl-C, exit 0."""
    from cc_nemo.launch.claude_env import REMOVED_VARS, proxy_vars
    from cc_nemo.proxy.usage import UsageLedger

    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    log_path = log_file_path(settings)
    sock = open_listen_socket(host, port)
    base_url = base_url_for(host, sock.getsockname()[1])

    def announce() -> None:
        variables = proxy_vars(settings, base_url, base_env)
        # NO_PROXY is only about this machine's proxy settings; a client elsewhere has its own.
        variables.pop("NO_PROXY")
        variables.pop("no_proxy")
        for line in export_lines(variables, REMOVED_VARS):
            print(line, file=out)
        out.flush()
        if not quiet:
            print(
                f"cc-proxy: serving {settings.main_model.alias} on {base_url} "
                f"(log: {log_path}); Ctrl-C to stop",
                file=err,
                flush=True,
            )

    ledger = UsageLedger()
    try:
        with logging_to_file(settings):
            asyncio.run(serve_forever(settings, sock, ledger=ledger, announce=announce))
    finally:
        sock.close()
    if not quiet:
        print(ledger.final_summary().render(), file=err, flush=True)
    return 0
