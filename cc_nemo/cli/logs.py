"""`cc-proxy logs`: the proxy's log file as lines a person reads.

The proxy never prints while claude owns the terminal (docs/architecture.md, invariant 6), so
`proxy.log` is where a user sees what happened. This reads it, with its rotated backups
(proxy.log.1 … .3, oldest last), and follows it across a rotation with `-f`. Parsing, filtering
and rendering are pure (`log_lines.py`); this module reads files, resolves options and writes.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from cc_nemo.cli.common import note
from cc_nemo.errors import UserError

if TYPE_CHECKING:
    from cc_nemo.cli.log_lines import LogRecord, LogsOptions, RenderedLine, Renderer, Selection

DEFAULT_COUNT = 20
# The proxy's RotatingFileHandler keeps this many backups (cc_nemo/proxy/logs.py).
BACKUP_COUNT = 3
POLL_SECONDS = 0.2
# How much of the end of a file is read first for the last requests; four times more each
# time that is not enough.
TAIL_BYTES = 256 * 1024
# Following a session, a request's earlier records wait for its request line (which names the
# session); this bounds the requests held at once.
MAX_HELD_REQUESTS = 1000
_ANSI = {
    "dim": "2",
    "bold": "1",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "magenta": "35",
}


def log_files(path: Path) -> list[Path]:
    """The log and its rotated backups that exist, oldest first."""
    backups = [path.with_name(f"{path.name}.{n}") for n in range(BACKUP_COUNT, 0, -1)]
    return [candidate for candidate in [*backups, path] if candidate.is_file()]


def _decode_lines(data: bytes) -> list[str]:
    return data.decode("utf-8", "replace").splitlines()


class LogTail:
    """Reads `path` from where it last stopped, and after a rotation (the file renamed to
    proxy.log.1 and a new one created) or a truncation, finishes the old file and starts the
    new one from its beginning. Only whole lines are returned while following; a line still
    being written waits for its newline."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._partial = b""
        self._open()

    def _open(self) -> None:
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - held open across polls
        except FileNotFoundError:
            self._file = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def size(self) -> int:
        return os.fstat(self._file.fileno()).st_size if self._file is not None else 0

    def read_from(self, offset: int, *, final: bool) -> list[str]:
        """The lines from byte `offset` to the end (following then continues from there)."""
        if self._file is None:
            return []
        self._file.seek(offset)
        self._partial = b""
        return self._take(self._file.read(), final=final)

    def read_lines(self, *, final: bool = False) -> list[str]:
        """Whole lines written since the last call; with `final`, the unfinished last line too."""
        lines: list[str] = []
        if self._file is None:
            self._open()
        if self._file is not None:
            lines.extend(self._take(self._file.read(), final=final))
            if self._replaced():
                lines.extend(self._take(self._file.read(), final=True))
                self.close()
                self._open()
                if self._file is not None:
                    lines.extend(self._take(self._file.read(), final=final))
        return lines

    def _replaced(self) -> bool:
        """Whether `path` is now another file (rotated) or this one was cut short."""
        assert self._file is not None
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return False  # mid-rotation: renamed, the new one not created yet
        mine = os.fstat(self._file.fileno())
        if (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
            return True
        if current.st_size < self._file.tell():
            self._file.seek(0)
            self._partial = b""
        return False

    def _take(self, data: bytes, *, final: bool) -> list[str]:
        data = self._partial + data
        if final:
            self._partial = b""
            return _decode_lines(data)
        whole, newline, rest = data.rpartition(b"\n")
        self._partial = rest
        return _decode_lines(whole + newline) if newline else []


class LiveSelection:
    """The selection applied to records as they arrive. With --session, a request's records
    before its request line (warnings, retries) are held until that line says which session
    it belongs to."""

    def __init__(self, selection: Selection, session_of: dict[str, str | None]) -> None:
        self._selection = selection
        self._session_of = session_of
        self._held: OrderedDict[str, list[LogRecord]] = OrderedDict()

    def take(self, record: LogRecord) -> list[LogRecord]:
        """The records to show now (held ones first), in log order."""
        request_id = record.request_id
        if self._selection.session is None or request_id is None:
            return [record] if self._selection.accepts(record, self._session_of) else []
        if record.request is None and request_id not in self._session_of:
            self._held.setdefault(request_id, []).append(record)
            self._held.move_to_end(request_id)
            while len(self._held) > MAX_HELD_REQUESTS:
                self._held.popitem(last=False)
            return []
        if record.request is not None:
            self._session_of[request_id] = record.request.session
        ready = [*self._held.pop(request_id, []), record]
        return [r for r in ready if self._selection.accepts(r, self._session_of)]


class Output:
    """Writes rendered lines, coloured only for a terminal (and never under NO_COLOR), with any
    secret this process knows of (the credential variables) masked."""

    def __init__(self, stream: IO[str]) -> None:
        from cc_nemo.settings.credentials import redact

        self._stream = stream
        self._redact = redact
        self.colour = _wants_colour(stream)

    def write(self, lines: Iterable[RenderedLine]) -> None:
        for line in lines:
            self._stream.write(self._format(line) + "\n")
        self._stream.flush()

    def _format(self, line: RenderedLine) -> str:
        parts: list[str] = []
        for text, style in line:
            text = self._redact(text)
            code = _ANSI.get(style) if self.colour else None
            parts.append(f"\x1b[{code}m{text}\x1b[0m" if code else text)
        return "".join(parts).rstrip()


def _wants_colour(stream: IO[str]) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _read_from(path: Path, offset: int) -> list[str]:
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            return _decode_lines(file.read())
    except FileNotFoundError:
        return []  # rotated away meanwhile
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _shown_within(
    records: list[LogRecord], selection: Selection, count: int | None
) -> tuple[list[LogRecord], bool]:
    """The records to show (the last `count` requests' worth, all with None), and whether
    they start after the first selected record (so older records would not be shown)."""
    from cc_nemo.cli.log_lines import last_requests, sessions_in

    session_of = sessions_in(records)
    selected = [record for record in records if selection.accepts(record, session_of)]
    if count is None:
        return selected, False
    window = last_requests(selected, count)
    return window, len(window) < len(selected)


def _records_from_end(
    read_from: Callable[[int], list[str]],
    size: int,
    enough: Callable[[list[LogRecord]], bool],
) -> tuple[list[LogRecord], bool]:
    """A file's records read back from its end, as far as `enough` needs (a 10 MB file is
    not parsed for 20 requests); and whether the whole file was read."""
    from cc_nemo.cli.log_lines import from_first_record, parse_records

    span = TAIL_BYTES
    while True:
        start = max(0, size - span)
        lines: Sequence[str] = read_from(start)
        if start > 0:
            lines = from_first_record(lines[1:])  # the first line is likely cut
        records = parse_records(lines)
        if start == 0 or enough(records):
            return records, start == 0
        span *= 4


def _load(options: LogsOptions, tail: LogTail, selection: Selection) -> list[LogRecord]:
    """The records the options need: the newest, through `tail` (which then follows the
    file), and as far back into the rotated backups as needed."""
    from cc_nemo.cli.log_lines import lines_of_records_mentioning, parse_records

    backups = [path for path in reversed(log_files(options.path)) if path != options.path]
    final = not options.follow
    needle = options.request_id
    if options.session is not None:
        needle = f"session={options.session}"
    if needle is not None:
        # One request or one session may be anywhere: every file that mentions it, whole.
        records: list[LogRecord] = []
        for read in [lambda: tail.read_from(0, final=final)] + [
            functools.partial(_read_from, backup, 0) for backup in backups
        ]:
            lines = read()
            if options.request_id is not None:
                lines = lines_of_records_mentioning(lines, options.request_id)
            if any(needle in line for line in lines):
                records = parse_records(lines) + records
        return records

    def enough(older: list[LogRecord], newer: list[LogRecord]) -> bool:
        return _shown_within(older + newer, selection, options.count)[1]

    records, whole = _records_from_end(
        lambda offset: tail.read_from(offset, final=final), tail.size(), lambda r: enough(r, [])
    )
    for backup in backups:
        if not whole or enough(records, []):
            break
        newer = records
        older, whole = _records_from_end(
            functools.partial(_read_from, backup),
            _size(backup),
            lambda r, newer=newer: enough(r, newer),
        )
        records = older + newer
    return records


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _resolve_session(prefix: str, records: list[LogRecord], follow: bool) -> str:
    from cc_nemo.cli.log_lines import matching_sessions, sessions_in

    matches = matching_sessions(prefix, sessions_in(records))
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", …" if len(matches) > 5 else "")
        raise UserError(f"session '{prefix}' is ambiguous: it starts {shown}; give more of it")
    if not follow:
        raise UserError(f"no request of session '{prefix}' in the log")
    note(f"no request of session '{prefix}' in the log yet; waiting for one")
    return prefix


def _count(text: str) -> int:
    try:
        count = int(text.strip())
    except ValueError:
        count = 0
    if count < 1:
        raise UserError(f"-n takes a number of requests, 1 or more (got '{text}')")
    return count


def _check(
    path: Path,
    count_text: str,
    follow: bool,
    errors: bool,
    request_id: str | None,
    session: str | None,
) -> LogsOptions:
    from cc_nemo.cli.log_lines import LogsOptions

    count = _count(count_text)
    if request_id is not None and not request_id.strip():
        raise UserError("--request needs a request id (req_…, from the log or an error message)")
    if session is not None and not session.strip():
        raise UserError("--session needs a Claude Code session id (or the start of one)")
    return LogsOptions(
        path=path,
        count=count,
        follow=follow,
        errors=errors,
        request_id=request_id.strip() if request_id else None,
        session=session.strip() if session else None,
    )


def show_logs(options: LogsOptions, *, today: date | None = None) -> None:
    from cc_nemo.cli.log_lines import Renderer, Selection

    if not options.path.exists() and not log_files(options.path):
        if not options.follow:
            note(f"no proxy log yet at {options.path} (it is written by `cc-proxy run`)")
            return
        note(f"no proxy log yet at {options.path}; waiting for it (Ctrl-C to stop)")
    selection = Selection(errors=options.errors, request_id=options.request_id)
    tail = LogTail(options.path)
    try:
        records = _load(options, tail, selection)
        if options.session is not None:
            selection = Selection(
                errors=options.errors,
                request_id=options.request_id,
                session=_resolve_session(options.session, records, options.follow),
            )
        count = None if options.request_id is not None else options.count
        shown, _ = _shown_within(records, selection, count)
        renderer = Renderer(today=today or date.today(), full=options.request_id is not None)
        output = Output(sys.stdout)
        output.write(renderer.render_all(shown))
        if not shown and not options.follow:
            if options.request_id is not None:
                raise UserError(f"no line of {options.path} mentions {options.request_id}")
            note(_nothing_found(options))
        if options.follow:
            from cc_nemo.cli.log_lines import sessions_in

            _follow(tail, LiveSelection(selection, sessions_in(records)), renderer, output)
    finally:
        tail.close()


def _nothing_found(options: LogsOptions) -> str:
    if options.errors:
        within = f" of session {options.session}" if options.session else ""
        return f"no failed request{within} and no warning in {options.path}"
    return f"nothing logged yet in {options.path}"


def _follow(
    tail: LogTail,
    live: LiveSelection,
    renderer: Renderer,
    output: Output,
) -> None:
    """Print what is appended (across rotations) until interrupted."""
    from cc_nemo.cli.log_lines import RecordParser

    parser = RecordParser()
    while True:
        lines = tail.read_lines()
        completed: list[LogRecord] = []
        for line in lines:
            completed.extend(parser.feed(line))
        if not lines:
            # Quiet: the record still open (a traceback is written in one go) is complete.
            completed.extend(parser.flush())
        for record in completed:
            output.write(renderer.render_all(live.take(record)))
        if not lines:
            time.sleep(POLL_SECONDS)


def logs(
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing lines as they are logged.")
    ] = False,
    # Text, checked by _count: click's own refusal of "-n x" would be a usage block, not a line.
    count: Annotated[
        str,
        typer.Option(
            "-n", "--lines", metavar="N", help="How many requests to show, the newest last."
        ),
    ] = str(DEFAULT_COUNT),
    errors: Annotated[
        bool,
        typer.Option("--errors", help="Only failed requests, warnings and errors."),
    ] = False,
    request_id: Annotated[
        str | None,
        typer.Option(
            "--request",
            metavar="REQ_ID",
            help="Every line about one request, tracebacks in full.",
        ),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option(
            "--session",
            metavar="ID",
            help="Only the requests of one Claude Code session (a unique start of its id).",
        ),
    ] = None,
) -> None:
    """Show the proxy's log (proxy.log) as one line per request, warnings and errors between.

    The proxy writes nothing to the terminal while claude runs; this is where its story is.
    """
    from cc_nemo.settings.config import proxy_log_path

    options = _check(proxy_log_path(), count, follow, errors, request_id, session)
    try:
        show_logs(options)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how -f ends: quietly, exit 0
    except BrokenPipeError:
        # `cc-proxy logs | head`: the reader left; say nothing more, not even at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def register(app: typer.Typer) -> None:
    app.command()(logs)


__all__ = ["LogTail", "log_files", "logs", "register", "show_logs"]
