"""`cc-proxy usage`: what the ledger recorded, per day, week, month, model or session, as a
table with a cost chart, or as JSON."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from cc_nemo.errors import UserError

if TYPE_CHECKING:
    from cc_nemo.ledger.report import Report, ReportRow, Totals

# Bad --since/--until/--by: a usage mistake, like click's own (exit 2).
USAGE_EXIT_CODE = 2
CHART_WIDTH = 40
# The chart shows at most this many periods (the latest); the table shows them all.
CHART_MAX_PERIODS = 31
_EIGHTHS = " ▏▎▍▌▋▊▉"
_COLUMN_TITLES = {"day": "Day", "week": "Week of", "month": "Month", "model": "Model"}


def usage(
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="WHEN",
            help="From: 7d (the last 7 days, today included), 2w, 12h, today, 2026-11-01, "
            "20261101 or 2026-11. Default: everything recorded.",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            metavar="DAY",
            help="Through this local day, included: today, yesterday, 2026-11-30 or 2026-11.",
        ),
    ] = None,
    by: Annotated[
        str,
        typer.Option("--by", metavar="GROUP", help="day, week, month, model or session."),
    ] = "day",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows and totals.")] = False,
) -> None:
    """Tokens and estimated cost from the usage ledger, per day (local time), week, month,
    model or Claude Code session."""
    from cc_nemo.ledger import report as ledger_report
    from cc_nemo.ledger.schema import connect, ledger_path

    now = datetime.now().astimezone()
    try:
        grouping = ledger_report.parse_grouping(by)
        start = ledger_report.parse_since(since, now) if since is not None else None
        end = ledger_report.parse_until(until, now) if until is not None else None
    except ledger_report.BadPeriod as exc:
        raise UserError(str(exc), exit_code=USAGE_EXIT_CODE) from None
    if start is not None and end is not None and start >= end:
        raise UserError(f"--since {since} is not before --until {until}", exit_code=USAGE_EXIT_CODE)
    path = ledger_path()
    import sqlite3

    try:
        connection = connect(path, create=False)
        if connection is None:
            result = ledger_report.Report(grouping, start, end, ())
        else:
            try:
                result = ledger_report.build_report(connection, grouping, since=start, until=end)
            finally:
                connection.close()
    except sqlite3.DatabaseError as exc:
        raise UserError(f"cannot read the usage ledger {path}: {exc}") from None
    if as_json:
        sys.stdout.write(json.dumps(report_json(result), indent=2, ensure_ascii=False) + "\n")
        return
    if connection is None:
        sys.stdout.write(
            f"No usage recorded yet: the ledger ({path}) starts with the first request "
            "through `cc-proxy run` or `cc-proxy serve`.\n"
        )
        return
    if not result.rows:
        sys.stdout.write(f"No requests recorded {_span_words(result)}.\n")
        return
    show_report(result)


def report_json(result: Report) -> dict[str, object]:
    """The machine-readable report: the query, one object per group, and the totals."""
    rows = []
    for row in result.rows:
        entry: dict[str, object] = {result.grouping: row.key}
        if result.grouping == "session":
            entry["first_ts"] = row.first_ts
            entry["last_ts"] = row.last_ts
        if result.grouping != "model":
            entry["models"] = row.model_names
        entry.update(row.totals.as_json())
        if result.grouping != "model":
            entry["by_model"] = [{"model": name, **totals.as_json()} for name, totals in row.models]
        rows.append(entry)
    return {
        "by": result.grouping,
        "since": result.since.isoformat() if result.since else None,
        "until": result.until.isoformat() if result.until else None,
        "rows": rows,
        "totals": result.totals.as_json(),
    }


def show_report(result: Report) -> None:
    from rich.table import Table

    from cc_nemo.cli.common import console
    from cc_nemo.ledger.report import TIME_GROUPINGS

    grouping = result.grouping
    table = Table(title=f"Usage by {grouping}, {_span_words(result)}", title_justify="left")
    if grouping == "session":
        table.add_column("Session", no_wrap=True)
        table.add_column("Last request", no_wrap=True)
    else:
        table.add_column(_COLUMN_TITLES[grouping], no_wrap=True)
    if grouping != "model":
        table.add_column("Models")
    for title in ("Requests", "Input", "Output", "Cache read", "Total tokens", "Cost"):
        table.add_column(title, justify="right", no_wrap=True)
    for row in result.rows:
        table.add_row(*_cells(grouping, row.key, row), *_numbers(row.totals))
    table.add_section()
    blank = [""] * (2 if grouping == "session" else 1 if grouping != "model" else 0)
    table.add_row("Total", *blank, *_numbers(result.totals), style="bold")
    out = console()
    out.print(table)
    notes = _notes(result.totals)
    if notes:
        out.print(notes, markup=False)
    if grouping in TIME_GROUPINGS:
        chart = cost_chart(result)
        if chart:
            out.print()
            for line in chart:
                out.print(line, markup=False)
    out.print(
        "Costs are estimates at catalog prices ($ per million tokens, `cc-proxy models`).",
        style="dim",
        markup=False,
    )


def _cells(grouping: str, key: str, row: ReportRow) -> list[str]:
    if grouping == "session":
        last = datetime.fromtimestamp(row.last_ts).strftime("%Y-%m-%d %H:%M")
        return [_session_label(key), last, ", ".join(row.model_names)]
    if grouping == "model":
        return [key]
    return [_period_label(grouping, key), ", ".join(row.model_names)]


def _session_label(key: str) -> str:
    from cc_nemo.ledger.report import PROXY_SESSION_PREFIX

    if key.startswith(PROXY_SESSION_PREFIX):
        return f"(no session id) proxy {key.removeprefix(PROXY_SESSION_PREFIX)[:8]}"
    return key


def _period_label(grouping: str, key: str) -> str:
    if grouping == "day":
        return f"{date.fromisoformat(key):%a} {key}"
    return key


def _numbers(totals: Totals) -> list[str]:
    from cc_nemo.cli.statusline import format_usd

    return [
        f"{totals.requests:,}",
        f"{totals.input_tokens:,}",
        f"{totals.output_tokens:,}",
        f"{totals.cache_read_tokens:,}",
        f"{totals.total_tokens:,}",
        format_usd(totals.cost_usd),
    ]


def _notes(totals: Totals) -> str:
    parts = []
    if totals.errors:
        parts.append(f"{totals.errors:,} of {totals.requests:,} requests failed")
    if totals.fallbacks:
        plural = "s were" if totals.fallbacks != 1 else " was"
        parts.append(f"{totals.fallbacks:,} request{plural} answered by a fallback model")
    return "; ".join(parts) + "." if parts else ""


def cost_chart(result: Report) -> list[str]:
    """One bar per period, empty periods included, the latest CHART_MAX_PERIODS; bars are cost,
    or tokens when nothing had a price (a local model)."""
    from cc_nemo.cli.statusline import format_usd
    from cc_nemo.ledger.report import period_key, period_keys

    if not result.rows:
        return []
    first, last = result.rows[0].key, result.rows[-1].key
    # The periods asked for, not only those with requests: `--since 7d` charts seven days.
    if result.since is not None:
        first = min(first, period_key(result.grouping, result.since))
        end = result.until or datetime.now().astimezone()
        last = max(last, period_key(result.grouping, end - timedelta(microseconds=1)))
    every = period_keys(result.grouping, first, last)
    keys = every[-CHART_MAX_PERIODS:]
    by_key = {row.key: row.totals for row in result.rows}
    by_cost = result.totals.cost_usd > 0
    values = [
        (by_key[key].cost_usd if by_cost else by_key[key].total_tokens) if key in by_key else 0
        for key in keys
    ]
    largest = max(values)
    if largest <= 0:
        return []
    what = "Cost" if by_cost else "Tokens"
    title = f"{what} per {result.grouping}"
    if len(every) > len(keys):
        title += f" (the last {len(keys)})"
    labels = [_period_label(result.grouping, key) for key in keys]
    label_width = max(len(label) for label in labels)
    lines = [title]
    for label, value in zip(labels, values, strict=True):
        shown = format_usd(value) if by_cost else f"{int(value):,}"
        lines.append(f"{label:<{label_width}} {bar(value / largest, CHART_WIDTH)} {shown}")
    return lines


def bar(fraction: float, width: int) -> str:
    """A left-aligned bar of `width` cells filled to `fraction`, in eighths of a cell; any
    non-zero value shows at least a sliver."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    if fraction > 0 and eighths == 0:
        eighths = 1
    full, rest = divmod(eighths, 8)
    text = "█" * full + (_EIGHTHS[rest] if rest else "")
    return text.ljust(width)


def _span_words(result: Report) -> str:
    since, until = result.since, result.until
    if since is None and until is None:
        return "everything recorded (local time)"
    start = since.strftime("%Y-%m-%d %H:%M") if since else "the first request"
    if since is not None and since.hour == 0 and since.minute == 0:
        start = f"{since:%Y-%m-%d}"
    if until is None:
        return f"since {start} (local time)"
    last_day = (until - timedelta(seconds=1)).strftime("%Y-%m-%d")
    return f"from {start} through {last_day} (local time)"


def register(app: typer.Typer) -> None:
    app.command("usage")(usage)
