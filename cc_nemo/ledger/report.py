"""`cc-proxy usage`'s queries: the ledger's rows summed per local day, week, month, model or
Claude Code session, between two instants.

Days, weeks (Monday to Sunday) and months are local time: SQLite's `localtime` and Python's
both follow the C library's time zone, so the bounds computed here meet the buckets SQLite
makes. A request's model is the alias that answered it (a fallback's, when one answered), so a
model's cost is what it cost. Pure reading: nothing here writes to the ledger."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

Grouping = Literal["day", "week", "month", "model", "session"]
GROUPINGS: tuple[Grouping, ...] = ("day", "week", "month", "model", "session")
TIME_GROUPINGS: frozenset[str] = frozenset({"day", "week", "month"})

# The SQL for each grouping's key; chosen from this table only, never built from input.
_GROUP_KEY_SQL: dict[str, str] = {
    "day": "date(ts, 'unixepoch', 'localtime')",
    # 'weekday 0' moves to the coming Sunday (or stays on one); six days back is its Monday.
    "week": "date(ts, 'unixepoch', 'localtime', 'weekday 0', '-6 days')",
    "month": "strftime('%Y-%m', ts, 'unixepoch', 'localtime')",
    "model": "COALESCE(answered_by, model)",
    # A request without Claude Code's session header (another client of `serve`) is counted
    # under the proxy session that carried it.
    "session": "COALESCE(claude_session, 'proxy:' || proxy_session)",
}
PROXY_SESSION_PREFIX = "proxy:"

_RELATIVE = re.compile(r"^(\d{1,5})([hdw])$")
_ISO_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_COMPACT_DAY = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")

SINCE_FORMS = "7d, 2w, 12h, today, yesterday, 2026-11-01, 20261101 or 2026-11"
UNTIL_FORMS = "today, yesterday, 2026-11-30, 20261130 or 2026-11"


class BadPeriod(ValueError):
    """A --since or --until the user can fix; the message says which forms work."""


def parse_since(text: str, now: datetime) -> datetime | None:
    """The first instant a report covers; None for `all`.

    `Nd` is the last N calendar days including today (from local midnight N-1 days ago), so
    `--since 7d --by day` has at most seven rows; `Nw` is 7N days the same way; `Nh` is exactly
    N hours before `now`. A date starts at its local midnight; a month at its first day."""
    value = text.strip().lower()
    if value == "all":
        return None
    relative = _RELATIVE.match(value)
    if relative:
        count, unit = int(relative.group(1)), relative.group(2)
        if count == 0:
            raise BadPeriod(f"--since {text!r}: the count must be at least 1")
        if unit == "h":
            return now - timedelta(hours=count)
        days = count * (7 if unit == "w" else 1)
        return _midnight(now.date() - timedelta(days=days - 1))
    first, _ = _day_span(value, now, flag="--since", text=text, forms=SINCE_FORMS)
    return first


def parse_until(text: str, now: datetime) -> datetime:
    """The instant a report stops before: the end of the named local day (or month), so the
    day itself is included."""
    value = text.strip().lower()
    if _RELATIVE.match(value):
        raise BadPeriod(f"--until {text!r}: give a day ({UNTIL_FORMS}), not a length of time")
    _, end = _day_span(value, now, flag="--until", text=text, forms=UNTIL_FORMS)
    return end


def _day_span(
    value: str, now: datetime, *, flag: str, text: str, forms: str
) -> tuple[datetime, datetime]:
    """[start, end) of a named local day or month."""
    today = now.date()
    if value in ("today", "yesterday"):
        day = today if value == "today" else today - timedelta(days=1)
        return _midnight(day), _midnight(day + timedelta(days=1))
    month = _MONTH.match(value)
    if month:
        year, number = int(month.group(1)), int(month.group(2))
        if not 1 <= number <= 12:
            raise BadPeriod(f"{flag} {text!r}: there is no month {number}")
        following = date(year + number // 12, number % 12 + 1, 1)
        return _midnight(date(year, number, 1)), _midnight(following)
    match = _ISO_DAY.match(value) or _COMPACT_DAY.match(value)
    if not match:
        raise BadPeriod(f"{flag} {text!r} is not a day or a length of time; use {forms}")
    try:
        day = date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError as exc:
        raise BadPeriod(f"{flag} {text!r} is not a real day ({exc})") from None
    return _midnight(day), _midnight(day + timedelta(days=1))


def _midnight(day: date) -> datetime:
    """Local midnight starting `day`, with that day's own UTC offset (DST moves it)."""
    return datetime.combine(day, time()).astimezone()


def parse_grouping(text: str) -> Grouping:
    value = text.strip().lower()
    for grouping in GROUPINGS:
        if value == grouping:
            return grouping
    raise BadPeriod(f"--by {text!r}: use one of {', '.join(GROUPINGS)}")


@dataclass(frozen=True)
class Totals:
    """Sums over some requests. `input_tokens` excludes cache reads (the ledger's convention),
    so the total is input + cache read + output; reasoning tokens are part of output."""

    requests: int = 0
    errors: int = 0
    fallbacks: int = 0
    input_tokens: int = 0
    cache_read_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.output_tokens

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            requests=self.requests + other.requests,
            errors=self.errors + other.errors,
            fallbacks=self.fallbacks + other.fallbacks,
            input_tokens=self.input_tokens + other.input_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
        )

    def as_json(self) -> dict[str, int | float]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "fallbacks": self.fallbacks,
            "input_tokens": self.input_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": round(self.cost_usd, 6),
        }


@dataclass(frozen=True)
class ReportRow:
    """One group: its key (a day, a week's Monday, a month, a model or a session id), the
    models that answered in it (most expensive first) with their own sums, and its span."""

    key: str
    totals: Totals
    models: tuple[tuple[str, Totals], ...]
    first_ts: float
    last_ts: float

    @property
    def model_names(self) -> list[str]:
        return [name for name, _ in self.models]


@dataclass(frozen=True)
class Report:
    grouping: Grouping
    since: datetime | None
    until: datetime | None
    rows: tuple[ReportRow, ...]
    totals: Totals = field(default_factory=Totals)


def build_report(
    connection: sqlite3.Connection,
    grouping: Grouping,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Report:
    """Sum the ledger's requests in [since, until) per group."""
    conditions: list[str] = []
    parameters: list[float] = []
    if since is not None:
        conditions.append("ts >= ?")
        parameters.append(since.timestamp())
    if until is not None:
        conditions.append("ts < ?")
        parameters.append(until.timestamp())
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    query = f"""
        SELECT {_GROUP_KEY_SQL[grouping]} AS grp, COALESCE(answered_by, model) AS used,
               COUNT(*), SUM(status >= 400 OR error_type IS NOT NULL),
               SUM(fallback_from IS NOT NULL AND answered_by IS NOT NULL),
               SUM(input_tokens), SUM(cache_read_tokens), SUM(output_tokens),
               SUM(reasoning_tokens), SUM(cost_usd), MIN(ts), MAX(ts)
        FROM requests {where}
        GROUP BY grp, used
    """  # the key comes from _GROUP_KEY_SQL, the bounds are parameters
    try:
        fetched = connection.execute(query, parameters).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            fetched = []  # a ledger file no proxy has written to yet
        else:
            raise
    rows = _fold(fetched)
    rows.sort(key=_sort_key(grouping))
    totals = sum((row.totals for row in rows), Totals())
    return Report(grouping, since, until, tuple(rows), totals)


def _fold(fetched: Sequence[Sequence[Any]]) -> list[ReportRow]:
    """(group, model) sums → one row per group with its per-model breakdown."""
    groups: dict[str, list[tuple[str, Totals, float, float]]] = {}
    for grp, used, *sums, first_ts, last_ts in fetched:
        requests, errors, fallbacks, inp, cache, out, reasoning, cost = (v or 0 for v in sums)
        totals = Totals(
            requests=int(requests),
            errors=int(errors),
            fallbacks=int(fallbacks),
            input_tokens=int(inp),
            cache_read_tokens=int(cache),
            output_tokens=int(out),
            reasoning_tokens=int(reasoning),
            cost_usd=float(cost),
        )
        groups.setdefault(str(grp), []).append((str(used), totals, float(first_ts), float(last_ts)))
    rows = []
    for key, parts in groups.items():
        parts.sort(key=lambda part: (-part[1].cost_usd, -part[1].total_tokens, part[0]))
        rows.append(
            ReportRow(
                key=key,
                totals=sum((part[1] for part in parts), Totals()),
                models=tuple((name, totals) for name, totals, _, _ in parts),
                first_ts=min(part[2] for part in parts),
                last_ts=max(part[3] for part in parts),
            )
        )
    return rows


def _sort_key(grouping: Grouping) -> Callable[[ReportRow], Any]:
    """Periods in time order (like ccusage); models by cost, largest first; sessions by their
    last request, most recent last so the latest is next to the total."""
    if grouping in TIME_GROUPINGS:
        return lambda row: row.key
    if grouping == "model":
        return lambda row: (-row.totals.cost_usd, -row.totals.total_tokens, row.key)
    return lambda row: (row.last_ts, row.key)


def period_key(grouping: Grouping, moment: datetime) -> str:
    """The key of the local day, week or month holding `moment` (as SQLite names them)."""
    day = moment.astimezone().date()
    if grouping == "month":
        return f"{day:%Y-%m}"
    if grouping == "week":
        day -= timedelta(days=day.weekday())
    return day.isoformat()


def period_keys(grouping: Grouping, first: str, last: str) -> list[str]:
    """Every period key from `first` to `last` inclusive (the chart shows empty days too)."""
    if grouping == "month":
        year, month = (int(part) for part in first.split("-"))
        keys = []
        while f"{year:04d}-{month:02d}" <= last:
            keys.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return keys
    step = timedelta(days=7 if grouping == "week" else 1)
    day, end = date.fromisoformat(first), date.fromisoformat(last)
    keys = []
    while day <= end:
        keys.append(day.isoformat())
        day += step
    return keys
