"""`cc-proxy usage`'s queries on real ledgers (schema.connect + INSERT_SQL) built from known
records, in a time zone whose local days are not UTC's."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cc_nemo.ledger import report
from cc_nemo.ledger.schema import INSERT_SQL, RequestRecord, connect
from tests.ledger.records import make_record

# New York's rules as a POSIX string (no tz database needed): 5 hours behind UTC in November,
# so an evening request is already the next day in UTC.
NEW_YORK = "EST5EDT,M3.2.0,M11.1.0"


@pytest.fixture(autouse=True)
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time for Python and SQLite alike (both ask the C library)."""
    monkeypatch.setenv("TZ", NEW_YORK)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def local(text: str) -> float:
    """A local wall-clock time as Unix seconds."""
    return datetime.fromisoformat(text).astimezone().timestamp()


def write_ledger(path: Path, records: Iterable[RequestRecord]) -> Path:
    connection = connect(path)
    assert connection is not None
    connection.executemany(INSERT_SQL, [record.row() for record in records])
    connection.commit()
    connection.close()
    return path


def build(path: Path, grouping: report.Grouping, **bounds: datetime | None) -> report.Report:
    connection = connect(path, create=False)
    assert connection is not None
    try:
        return report.build_report(connection, grouping, **bounds)
    finally:
        connection.close()


SESSION_A = "aaaaaaaa-0000-4000-8000-000000000001"
SESSION_B = "bbbbbbbb-0000-4000-8000-000000000002"


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """Three local days (Sun 1, Mon 2 and Tue 3 November 2026; evenings are the next day in
    UTC), two models, a fallback, a failed request, two Claude Code sessions and a client
    without a session id."""
    return write_ledger(
        tmp_path / "usage.sqlite3",
        [
            make_record(ts=local("2026-11-01T09:00"), claude_session=SESSION_A, request_id="r1",
                        input_tokens=1000, cache_read_tokens=4000, output_tokens=100,
                        reasoning_tokens=40, cost_usd=0.01),
            make_record(ts=local("2026-11-01T23:30"), claude_session=SESSION_A, request_id="r2",
                        input_tokens=2000, cache_read_tokens=0, output_tokens=200,
                        cost_usd=0.02),
            # Answered by kimi because nemotron was out of capacity: kimi's cost.
            make_record(ts=local("2026-11-02T00:10"), claude_session=SESSION_A, request_id="r3",
                        model="nemotron", answered_by="kimi", fallback_from="nemotron",
                        upstream_model="workers-ai/@cf/moonshotai/kimi-k2.6",
                        input_tokens=3000, cache_read_tokens=1000, output_tokens=300,
                        cost_usd=0.50),
            make_record(ts=local("2026-11-02T12:00"), claude_session=SESSION_B, request_id="r4",
                        model="glm-flash", input_tokens=500, cache_read_tokens=0,
                        output_tokens=50, cost_usd=0.001),
            make_record(ts=local("2026-11-02T12:01"), claude_session=SESSION_B, request_id="r5",
                        status=529, error_type="overloaded_error", input_tokens=0,
                        cache_read_tokens=0, output_tokens=0, cost_usd=0.0),
            make_record(ts=local("2026-11-03T18:00"), claude_session=None, request_id="r6",
                        proxy_session="f" * 32, input_tokens=100, cache_read_tokens=0,
                        output_tokens=10, cost_usd=0.002),
        ],
    )  # fmt: skip


def test_days_are_local_with_models_fallbacks_and_errors(ledger: Path) -> None:
    result = build(ledger, "day")
    assert [row.key for row in result.rows] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    first, second, third = result.rows
    # 23:30 on the 1st is 04:30 UTC on the 2nd: it stays on the local day.
    assert first.totals.requests == 2
    assert first.totals.input_tokens == 3000
    assert first.totals.cache_read_tokens == 4000
    assert first.totals.output_tokens == 300
    assert first.totals.reasoning_tokens == 40
    assert first.totals.total_tokens == 7300
    assert first.totals.cost_usd == pytest.approx(0.03)
    assert first.model_names == ["nemotron"]
    # The fallback's request counts for kimi, the model that answered (and cost the most).
    assert second.model_names == ["kimi", "glm-flash", "nemotron"]
    assert second.totals.requests == 3
    assert second.totals.errors == 1
    assert second.totals.fallbacks == 1
    assert dict(second.models)["kimi"].cost_usd == pytest.approx(0.50)
    assert third.totals.requests == 1
    assert result.totals.requests == 6
    assert result.totals.errors == 1
    assert result.totals.fallbacks == 1
    assert result.totals.cost_usd == pytest.approx(0.533)
    assert result.totals.total_tokens == sum(row.totals.total_tokens for row in result.rows)


def test_the_local_day_changes_at_local_midnight(tmp_path: Path) -> None:
    path = write_ledger(
        tmp_path / "usage.sqlite3",
        [
            make_record(ts=local("2026-11-05T23:59:59"), request_id="before"),
            make_record(ts=local("2026-11-06T00:00:00"), request_id="after"),
        ],
    )
    assert [row.key for row in build(path, "day").rows] == ["2026-11-05", "2026-11-06"]


def test_since_and_until_include_their_whole_local_days(tmp_path: Path) -> None:
    path = write_ledger(
        tmp_path / "usage.sqlite3",
        [
            make_record(ts=local("2026-11-01T23:59:59"), request_id="too early", cost_usd=1),
            make_record(ts=local("2026-11-02T00:00:00"), request_id="first in", cost_usd=2),
            make_record(ts=local("2026-11-03T23:59:59"), request_id="last in", cost_usd=4),
            make_record(ts=local("2026-11-04T00:00:00"), request_id="too late", cost_usd=8),
        ],
    )
    now = datetime.fromisoformat("2026-11-20T15:00").astimezone()
    since = report.parse_since("2026-11-02", now)
    until = report.parse_until("20261103", now)
    result = build(path, "day", since=since, until=until)
    assert [row.key for row in result.rows] == ["2026-11-02", "2026-11-03"]
    assert result.totals.cost_usd == 6
    assert build(path, "day", since=since).totals.cost_usd == 14
    assert build(path, "day", until=until).totals.cost_usd == 7


def test_relative_since_counts_calendar_days_including_today() -> None:
    now = datetime.fromisoformat("2026-11-20T15:00").astimezone()
    assert report.parse_since("7d", now) == datetime.fromisoformat("2026-11-14T00:00").astimezone()
    assert report.parse_since("1d", now) == report.parse_since("today", now)
    assert report.parse_since("today", now) == datetime.fromisoformat("2026-11-20").astimezone()
    assert report.parse_since("2w", now) == datetime.fromisoformat("2026-11-07").astimezone()
    assert report.parse_since("12h", now) == now - timedelta(hours=12)
    assert report.parse_since("all", now) is None
    assert report.parse_since("2026-11", now) == datetime.fromisoformat("2026-11-01").astimezone()
    assert report.parse_until("2026-12", now) == datetime.fromisoformat("2027-01-01").astimezone()
    assert report.parse_until("yesterday", now) == report.parse_since("today", now)


def test_a_range_across_the_dst_change_starts_at_that_days_own_midnight() -> None:
    # New York left daylight time on 1 November 2026: midnight before it was UTC-4.
    now = datetime.fromisoformat("2026-11-03T12:00").astimezone()
    start = report.parse_since("2026-10-31", now)
    assert start is not None
    assert start.utcoffset() == timedelta(hours=-4)
    assert start.timestamp() == datetime.fromisoformat("2026-10-31T04:00+00:00").timestamp()


def test_weeks_run_monday_to_sunday_and_are_named_by_their_monday(tmp_path: Path) -> None:
    path = write_ledger(
        tmp_path / "usage.sqlite3",
        [
            make_record(ts=local("2026-11-01T20:00"), request_id="sunday", cost_usd=1),
            make_record(ts=local("2026-11-02T08:00"), request_id="monday", cost_usd=2),
            make_record(ts=local("2026-11-08T23:00"), request_id="next sunday", cost_usd=4),
            make_record(ts=local("2026-11-09T00:30"), request_id="next monday", cost_usd=8),
        ],
    )
    result = build(path, "week")
    assert [(row.key, row.totals.cost_usd) for row in result.rows] == [
        ("2026-10-26", 1),
        ("2026-11-02", 6),
        ("2026-11-09", 8),
    ]


def test_months_are_local(tmp_path: Path) -> None:
    path = write_ledger(
        tmp_path / "usage.sqlite3",
        [
            make_record(ts=local("2026-11-30T22:00"), request_id="november", cost_usd=1),
            make_record(ts=local("2026-12-01T00:01"), request_id="december", cost_usd=2),
            make_record(ts=local("2027-01-01T10:00"), request_id="january", cost_usd=4),
        ],
    )
    rows = build(path, "month").rows
    assert [(row.key, row.totals.cost_usd) for row in rows] == [
        ("2026-11", 1),
        ("2026-12", 2),
        ("2027-01", 4),
    ]


def test_models_are_the_ones_that_answered_most_expensive_first(ledger: Path) -> None:
    result = build(ledger, "model")
    assert [row.key for row in result.rows] == ["kimi", "nemotron", "glm-flash"]
    kimi, nemotron, glm = result.rows
    assert (kimi.totals.requests, kimi.totals.fallbacks) == (1, 1)
    assert nemotron.totals.requests == 4
    assert nemotron.totals.errors == 1
    assert glm.totals.requests == 1


def test_sessions_are_claude_codes_and_a_client_without_one_counts_by_proxy(
    ledger: Path,
) -> None:
    result = build(ledger, "session")
    keys = [row.key for row in result.rows]
    assert keys == [SESSION_A, SESSION_B, report.PROXY_SESSION_PREFIX + "f" * 32]
    session_a = result.rows[0]
    assert session_a.totals.requests == 3
    assert session_a.model_names == ["kimi", "nemotron"]
    assert session_a.first_ts == local("2026-11-01T09:00")
    assert session_a.last_ts == local("2026-11-02T00:10")


def test_an_empty_ledger_file_reports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    path.touch()  # created, never written: no table yet
    result = build(path, "day")
    assert result.rows == ()
    assert result.totals == report.Totals()


@pytest.mark.parametrize(
    ("since", "words"),
    [
        ("7x", "is not a day or a length of time"),
        ("0d", "at least 1"),
        ("2026-02-30", "is not a real day"),
        ("2026-13", "there is no month 13"),
        ("last week", "use 7d, 2w"),
        ("", "is not a day"),
    ],
)
def test_a_bad_since_says_what_works(since: str, words: str) -> None:
    with pytest.raises(report.BadPeriod, match=words):
        report.parse_since(since, datetime.now().astimezone())


def test_until_takes_a_day_not_a_length() -> None:
    with pytest.raises(report.BadPeriod, match="give a day"):
        report.parse_until("7d", datetime.now().astimezone())


def test_grouping_names() -> None:
    assert report.parse_grouping(" Week ") == "week"
    with pytest.raises(report.BadPeriod, match="use one of day, week, month, model, session"):
        report.parse_grouping("year")


def test_period_keys_fill_the_gaps() -> None:
    assert report.period_keys("day", "2026-12-30", "2027-01-02") == [
        "2026-12-30",
        "2026-12-31",
        "2027-01-01",
        "2027-01-02",
    ]
    assert report.period_keys("week", "2026-11-02", "2026-11-16") == [
        "2026-11-02",
        "2026-11-09",
        "2026-11-16",
    ]
    assert report.period_keys("month", "2026-11", "2027-02") == [
        "2026-11",
        "2026-12",
        "2027-01",
        "2027-02",
    ]


def test_period_key_names_the_period_holding_a_moment() -> None:
    sunday_night = datetime.fromisoformat("2026-11-08T23:30").astimezone()
    assert report.period_key("day", sunday_night) == "2026-11-08"
    assert report.period_key("week", sunday_night) == "2026-11-02"
    assert report.period_key("month", sunday_night) == "2026-11"
