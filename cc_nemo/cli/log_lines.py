"""The proxy's log, read back for a person: records parsed from `proxy.log` lines, filtered, and
rendered as short readable lines (pure: no I/O, no clock; `cc-proxy logs` is the shell).

A record starts with the header `configure_logging` writes ("2026-11-27 11:58:53,421 INFO
cc_nemo.proxy.app: message"); the lines after it up to the next header (a traceback, a logged
body) belong to it. Each request ends with one line from the outer middleware:
"<request id> POST /v1/messages model=… status=… …" (other paths: method, path, status,
duration). Its key=value pairs are parsed generally, so a key added later is carried, not fatal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

_HEADER = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2}) "
    r"(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2}),\d{3} "
    r"(?P<level>[A-Z]+) (?P<logger>[^\s:]+): ?(?P<message>.*)"
)
_STAMP_PARTS = ("year", "month", "day", "hour", "minute", "second")
_REQUEST_ID = re.compile(r"req_[A-Za-z0-9]+")
_REQUEST_LINE = re.compile(
    r"(?P<id>req_[A-Za-z0-9]+) (?P<method>[A-Z]+) (?P<path>/\S*)(?P<rest>.*)"
)
_KEY = re.compile(r"[a-z][a-z0-9_]*")
# Keys of the request line whose value is free text running to the next known key.
_FREE_TEXT_KEYS = frozenset({"notes"})
KNOWN_REQUEST_KEYS = frozenset(
    {
        "model",
        "upstream",
        "status",
        "stream",
        "in",
        "out",
        "cached",
        "ttft_ms",
        "duration_ms",
        "attempts",
        "error",
        "notes",
        "session",
    }
)
PROBLEM_LEVELS = frozenset({"WARNING", "ERROR", "CRITICAL"})
# Per-request detail a reader wants only when looking at that request (--request): the retry
# notice repeats the warning before it, and bodies (log_bodies) are megabytes.
_DETAIL_MESSAGES = (
    "retrying upstream in ",
    "client request: ",
    "upstream request: ",
    "upstream reply: ",
    "upstream stream: ",
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class RequestLine:
    """The one line the proxy writes when a request is answered."""

    method: str
    path: str
    fields: Mapping[str, str]

    def number(self, key: str) -> float | None:
        try:
            return float(self.fields[key])
        except (KeyError, ValueError):
            return None

    @property
    def status(self) -> int | None:
        value = self.number("status")
        return int(value) if value is not None else None

    @property
    def error(self) -> str | None:
        value = self.fields.get("error", "-")
        return None if value in ("", "-") else value

    @property
    def session(self) -> str | None:
        value = self.fields.get("session", "-")
        return None if value in ("", "-") else value

    @property
    def failed(self) -> bool:
        status = self.status
        return self.error is not None or status is None or status >= 400


@dataclass(frozen=True)
class LogRecord:
    """One record of the log. `when` is None for a line that is not a record (a torn or foreign
    line before the first header); its text is then `message`."""

    when: datetime | None
    level: str
    logger: str
    message: str
    extra_lines: tuple[str, ...] = ()
    request_id: str | None = None
    request: RequestLine | None = None

    @property
    def is_problem(self) -> bool:
        if self.request is not None:
            return self.request.failed
        return self.level in PROBLEM_LEVELS

    @property
    def is_detail(self) -> bool:
        """Per-request chatter hidden unless that request is asked for."""
        if self.request is not None or self.request_id is None or self.level != "INFO":
            return False
        text = self.message[len(self.request_id) :].lstrip()
        return text.startswith(_DETAIL_MESSAGES)

    def mentions(self, text: str) -> bool:
        return text in self.message or any(text in line for line in self.extra_lines)


def parse_request_fields(text: str) -> dict[str, str]:
    """`key=value` pairs separated by spaces. A word that is not `key=` continues the value
    before it (a note with spaces); inside a free-text value only a known key starts a new
    pair, so a note quoting `tool_choice=required` stays one note."""
    fields: dict[str, str] = {}
    current: str | None = None
    for word in text.split(" "):
        if not word:
            continue
        key, equals, value = word.partition("=")
        starts_pair = bool(equals) and _KEY.fullmatch(key) is not None
        if starts_pair and current in _FREE_TEXT_KEYS:
            starts_pair = key in KNOWN_REQUEST_KEYS and key not in fields
        if starts_pair:
            current = key
            fields[key] = value
        elif current is not None:
            fields[current] = f"{fields[current]} {word}"
    return fields


def parse_request_line(message: str) -> RequestLine | None:
    match = _REQUEST_LINE.fullmatch(message)
    if match is None:
        return None
    fields = parse_request_fields(match["rest"])
    if "status" not in fields:
        return None
    return RequestLine(method=match["method"], path=match["path"], fields=fields)


def _record(header: re.Match[str], extra_lines: Sequence[str]) -> LogRecord:
    try:
        # Not strptime: it costs more than all the rest of the parsing of a line.
        when: datetime | None = datetime(*map(int, header.group(*_STAMP_PARTS)))
    except ValueError:
        when = None
    message = header["message"]
    found_id = _REQUEST_ID.match(message)
    request = parse_request_line(message) if found_id else None
    return LogRecord(
        when=when,
        level=header["level"],
        logger=header["logger"],
        message=message,
        extra_lines=tuple(extra_lines),
        request_id=found_id.group() if found_id else None,
        request=request,
    )


class RecordParser:
    """Groups lines into records as they come (a record is complete once the next header, or
    the end, is seen). Never raises on any text."""

    def __init__(self) -> None:
        self._header: re.Match[str] | None = None
        self._extra: list[str] = []

    def feed(self, line: str) -> list[LogRecord]:
        """Take one line (without its newline); return the records it completes."""
        line = line.rstrip("\r\n")
        header = _HEADER.fullmatch(line)
        if header is not None:
            done = self.flush()
            self._header = header
            return done
        if self._header is not None:
            self._extra.append(line)
            return []
        if not line.strip():
            return []
        return [LogRecord(when=None, level="", logger="", message=line)]

    def flush(self) -> list[LogRecord]:
        """The record still open, now taken as complete."""
        if self._header is None:
            return []
        record = _record(self._header, self._extra)
        self._header, self._extra = None, []
        return [record]

    @property
    def pending(self) -> bool:
        return self._header is not None


def from_first_record(lines: Sequence[str]) -> Sequence[str]:
    """`lines` read from the middle of a file, from the first record's header on (the lines
    before it are the end of a record whose header was not read)."""
    for index, line in enumerate(lines):
        if _HEADER.fullmatch(line) is not None:
            return lines[index:]
    return []


def lines_of_records_mentioning(lines: Sequence[str], text: str) -> list[str]:
    """The lines of the records that mention `text`, in order: a file is searched for one
    request without parsing all of it."""
    kept: list[str] = []
    end = 0
    for index, line in enumerate(lines):
        if index < end or text not in line:
            continue
        start = index
        while start > end and _HEADER.fullmatch(lines[start]) is None:
            start -= 1
        end = index + 1
        while end < len(lines) and _HEADER.fullmatch(lines[end]) is None:
            end += 1
        kept.extend(lines[start:end])
    return kept


def parse_records(lines: Iterable[str]) -> list[LogRecord]:
    parser = RecordParser()
    records: list[LogRecord] = []
    for line in lines:
        records.extend(parser.feed(line))
    records.extend(parser.flush())
    return records


@dataclass(frozen=True)
class LogsOptions:
    """What `cc-proxy logs` was asked, checked."""

    path: Path
    count: int
    follow: bool
    errors: bool
    request_id: str | None
    session: str | None


# ---- selection ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """What the reader asked to see. `session` is a full session id, or a prefix while it is
    unresolved (following a session not yet in the log)."""

    errors: bool = False
    request_id: str | None = None
    session: str | None = None

    @property
    def shows_details(self) -> bool:
        return self.request_id is not None

    def accepts(self, record: LogRecord, session_of: Mapping[str, str | None]) -> bool:
        """Whether `record` is shown; `session_of` maps request ids to their session (from
        the request lines seen so far)."""
        if self.request_id is not None and not record.mentions(self.request_id):
            return False
        if self.errors and not record.is_problem:
            return False
        if self.session is not None:
            if record.request_id is None:
                return False
            session = session_of.get(record.request_id)
            if session is None or not session.startswith(self.session):
                return False
        if record.when is None:  # a line that is no record: only in the unfiltered view
            return self.request_id is None and not self.errors and self.session is None
        return self.shows_details or not record.is_detail


def sessions_in(records: Iterable[LogRecord]) -> dict[str, str | None]:
    """Request id → Claude Code session id, from the request lines."""
    return {
        record.request_id: record.request.session
        for record in records
        if record.request is not None and record.request_id is not None
    }


def matching_sessions(prefix: str, session_of: Mapping[str, str | None]) -> list[str]:
    return sorted({s for s in session_of.values() if s is not None and s.startswith(prefix)})


def last_requests(records: Sequence[LogRecord], count: int) -> list[LogRecord]:
    """The tail of `records` that holds the last `count` requests (by their last record), with
    everything logged between them (proxy start and stop, warnings of other requests)."""
    last_seen: dict[str, int] = {}
    first_seen: dict[str, int] = {}
    for index, record in enumerate(records):
        if record.request_id is not None:
            last_seen[record.request_id] = index
            first_seen.setdefault(record.request_id, index)
    newest = sorted(last_seen, key=last_seen.__getitem__)[-count:] if count > 0 else []
    if len(newest) < len(last_seen):
        start = min(first_seen[request_id] for request_id in newest) if newest else len(records)
        return list(records[start:])
    return list(records)


# ---- rendering ----------------------------------------------------------------------------------

# A line is a list of (text, style) pieces; the shell maps styles to colours or drops them.
Piece = tuple[str, str]
RenderedLine = list[Piece]
INDENT = " " * 10
_LEVEL_LABELS = {"WARNING": "WARN", "CRITICAL": "CRIT"}
_LEVEL_STYLES = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "red"}


def printable(text: str) -> str:
    """Log text made safe for a terminal: control characters (an escape sequence quoted from a
    request or an upstream error) are shown as codes, never interpreted."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\t", "    "))


def short_model(model: str) -> str:
    """`workers-ai/@cf/nvidia/nemotron-3-120b-a12b` → `nemotron-3-120b-a12b`."""
    return model.rstrip("/").rsplit("/", 1)[-1] or model


def duration(milliseconds: float) -> str:
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def status_style(status: int | None) -> str:
    if status is None or status >= 500 or status == 499:
        return "red"
    if status >= 400:
        return "yellow"
    return "green"


def _count(value: float | None) -> str:
    return f"{value:,.0f}" if value is not None else "?"


def _request_pieces(request: RequestLine) -> RenderedLine:
    fields = request.fields
    status = request.status
    pieces: RenderedLine = [(f"{fields.get('status', '?'):<6}", status_style(status))]
    details: list[Piece] = []
    if "model" not in fields:  # GET /v1/models, count_tokens, a refused path
        pieces.append((printable(f"{request.method} {request.path}"), ""))
    else:
        pieces.append(("stream " if fields.get("stream") == "yes" else "whole  ", "dim"))
        model = fields.get("model", "-")
        upstream = fields.get("upstream", "-")
        pieces.append((printable(model), "bold"))
        if upstream not in ("-", model):
            fell_back = "answered by " in fields.get("notes", "")
            pieces.append((" → ", "dim"))
            pieces.append((printable(short_model(upstream)), "magenta" if fell_back else ""))
        tokens = [fields.get(key, "0") for key in ("in", "out", "cached")]
        if not (request.failed and all(value == "0" for value in tokens)):
            cached = request.number("cached")
            text = f"in {_count(request.number('in'))}"
            if cached:
                text += f" ({_count(cached)} cached)"
            details.append((f"{text} · out {_count(request.number('out'))}", ""))
        ttft = request.number("ttft_ms")
        if ttft is not None:
            details.append((f"ttft {duration(ttft)}", "dim"))
    took = request.number("duration_ms")
    if took is not None:
        details.append((duration(took), ""))
    attempts = request.number("attempts")
    if attempts is not None and attempts > 1:
        details.append((f"{attempts:.0f} attempts", "yellow"))
    if request.error is not None:
        details.append((printable(request.error), "red"))
    if fields.get("notes"):
        details.append((printable(fields["notes"]), "magenta"))
    for index, piece in enumerate(details):
        pieces.append(("  " if index == 0 else " · ", "dim"))
        pieces.append(piece)
    return pieces


def _traceback_summary(extra_lines: Sequence[str]) -> str | None:
    """A traceback's last line (the exception and its message)."""
    for line in reversed(extra_lines):
        if line.strip():
            return line.strip()
    return None


def render_record(record: LogRecord, *, full: bool = False) -> list[RenderedLine]:
    """A record as the lines a person reads: one per record, the lines after it (a traceback)
    collapsed to their last one unless `full`."""
    if record.when is None:
        return [[(INDENT, ""), (printable(record.message), "dim")]]
    head: RenderedLine = [(record.when.strftime("%H:%M:%S") + "  ", "dim")]
    if record.request is not None:
        head.extend(_request_pieces(record.request))
    else:
        label = _LEVEL_LABELS.get(record.level, record.level)
        head.append((f"{label:<6}", _LEVEL_STYLES.get(record.level, "dim")))
        message = record.message
        if record.request_id is not None:
            message = message[len(record.request_id) :].lstrip()
        head.append((printable(message), "red" if record.level in ("ERROR", "CRITICAL") else ""))
        summary = None if full else _traceback_summary(record.extra_lines)
        if summary is not None:
            head.append((" — ", "dim"))
            head.append((printable(summary), "red"))
    if record.request_id is not None:
        head.append(("  ", ""))
        head.append((record.request_id, "dim"))
    lines = [head]
    if full:
        lines.extend([(INDENT, ""), (printable(line), "")] for line in record.extra_lines)
    return lines


@dataclass
class Renderer:
    """Renders records in order, with a line naming the day whenever it changes (and first,
    unless it is `today`): times alone are HH:MM:SS."""

    today: date
    full: bool = False
    _day: date | None = field(default=None, init=False)

    def render(self, record: LogRecord) -> list[RenderedLine]:
        lines: list[RenderedLine] = []
        if record.when is not None:
            day = record.when.date()
            if day != self._day and (self._day is not None or day != self.today):
                lines.append([(f"── {day.isoformat()} ──", "dim")])
            self._day = day
        lines.extend(render_record(record, full=self.full))
        return lines

    def render_all(self, records: Iterable[LogRecord]) -> Iterator[RenderedLine]:
        for record in records:
            yield from self.render(record)


def plain(line: RenderedLine) -> str:
    return "".join(text for text, _ in line).rstrip()
