"""`cc-proxy usage` through the real entry point, on ledgers built from known records."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cc_nemo.ledger.schema import ENV_LEDGER_PATH, INSERT_SQL, connect
from tests.cli.conftest import run_cli
from tests.ledger.records import make_record

NEW_YORK = "EST5EDT,M3.2.0,M11.1.0"
SESSION = "5b0f3f7e-0c1d-4e2f-9a8b-7c6d5e4f3a2b"


@pytest.fixture(autouse=True)
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", NEW_YORK)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Yesterday and today, local: nemotron, a kimi fallback, a failure; cc-proxy reads it
    through $CC_PROXY_LEDGER."""
    path = tmp_path / "usage.sqlite3"
    monkeypatch.setenv(ENV_LEDGER_PATH, str(path))
    today = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = (today - timedelta(days=1)).replace(hour=0)
    at = lambda day, hours: (day + timedelta(hours=hours)).timestamp()  # noqa: E731
    records = [
        make_record(ts=at(yesterday, 10), claude_session=SESSION, request_id="a",
                    input_tokens=12_000, cache_read_tokens=30_000, output_tokens=1_500,
                    cost_usd=0.25),
        make_record(ts=at(yesterday, 11), claude_session=SESSION, request_id="b",
                    answered_by="kimi", fallback_from="nemotron", input_tokens=8_000,
                    cache_read_tokens=0, output_tokens=900, cost_usd=1.10),
        make_record(ts=at(today, 0.5), claude_session=SESSION, request_id="c",
                    status=529, error_type="overloaded_error", input_tokens=0,
                    cache_read_tokens=0, output_tokens=0, cost_usd=0.0),
        make_record(ts=at(today, 0.6), claude_session="other", request_id="d",
                    input_tokens=2_000, cache_read_tokens=500, output_tokens=100,
                    cost_usd=0.05),
    ]  # fmt: skip
    connection = connect(path)
    assert connection is not None
    connection.executemany(INSERT_SQL, [record.row() for record in records])
    connection.commit()
    connection.close()
    return path


def local_day(offset_days: int) -> str:
    return (datetime.now() + timedelta(days=offset_days)).strftime("%Y-%m-%d")


def test_the_day_table_has_rows_a_total_and_a_cost_chart(ledger: Path) -> None:
    result = run_cli("usage")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    yesterday_row = next(line for line in lines if local_day(-1) in line and "│" in line)
    assert "nemotron" in yesterday_row and "kimi" in yesterday_row
    assert "20,000" in yesterday_row  # input
    assert "52,400" in yesterday_row  # 20,000 + 30,000 + 2,400 total tokens
    assert "$1.35" in yesterday_row
    total_row = next(line for line in lines if line.startswith("│ Total "))
    cells = [cell.strip() for cell in total_row.split("│")[1:-1]]
    # Day, models, requests, input, output, cache read, total tokens, cost.
    assert cells == ["Total", "", "4", "22,000", "2,500", "30,500", "55,000", "$1.40"]
    assert "1 of 4 requests failed; 1 request was answered by a fallback model." in lines
    chart = lines[lines.index("Cost per day") + 1 :]
    assert chart[0].startswith(f"{datetime.now() - timedelta(days=1):%a} {local_day(-1)} █")
    assert chart[0].endswith("$1.35")
    assert chart[1].endswith("$0.05")
    assert "Traceback" not in result.output


def test_model_and_session_tables_have_no_chart(ledger: Path) -> None:
    by_model = run_cli("usage", "--by", "model")
    assert by_model.exit_code == 0, by_model.output
    rows = [line for line in by_model.stdout.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == ["kimi", "nemotron", "Total"]
    assert "Cost per" not in by_model.stdout
    by_session = run_cli("usage", "--by", "session")
    assert SESSION in by_session.stdout
    assert "Cost per" not in by_session.stdout


def test_json_has_rows_per_group_and_totals(ledger: Path) -> None:
    result = run_cli("usage", "--json", "--by", "day", "--since", "2d")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["by"] == "day"
    assert data["until"] is None
    assert datetime.fromisoformat(data["since"]).date() == datetime.now().date() - timedelta(1)
    assert [row["day"] for row in data["rows"]] == [local_day(-1), local_day(0)]
    yesterday = data["rows"][0]
    assert yesterday["models"] == ["kimi", "nemotron"]
    assert yesterday["requests"] == 2
    assert yesterday["fallbacks"] == 1
    assert yesterday["total_tokens"] == 52_400
    assert yesterday["cost_usd"] == pytest.approx(1.35)
    assert [entry["model"] for entry in yesterday["by_model"]] == ["kimi", "nemotron"]
    assert yesterday["by_model"][0]["cost_usd"] == pytest.approx(1.10)
    assert data["totals"] == {
        "requests": 4,
        "errors": 1,
        "fallbacks": 1,
        "input_tokens": 22_000,
        "cache_read_tokens": 30_500,
        "output_tokens": 2_500,
        "reasoning_tokens": 0,
        "total_tokens": 55_000,
        "cost_usd": pytest.approx(1.40),
    }


def test_json_by_session_carries_the_span(ledger: Path) -> None:
    data = json.loads(run_cli("usage", "--json", "--by", "session").stdout)
    session = next(row for row in data["rows"] if row["session"] == SESSION)
    assert session["requests"] == 3
    assert session["first_ts"] < session["last_ts"]


def test_since_today_leaves_yesterday_out(ledger: Path) -> None:
    data = json.loads(run_cli("usage", "--json", "--since", "today").stdout)
    assert [row["day"] for row in data["rows"]] == [local_day(0)]
    data = json.loads(run_cli("usage", "--json", "--until", "yesterday").stdout)
    assert [row["day"] for row in data["rows"]] == [local_day(-1)]


def test_a_range_without_requests_says_so(ledger: Path) -> None:
    result = run_cli("usage", "--since", "2020-01-01", "--until", "2020-01-31")
    assert result.exit_code == 0
    assert result.stdout.startswith("No requests recorded from 2020-01-01 through 2020-01-31")


def test_no_ledger_yet_is_a_friendly_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere" / "usage.sqlite3"
    monkeypatch.setenv(ENV_LEDGER_PATH, str(missing))
    result = run_cli("usage")
    assert result.exit_code == 0
    assert result.stdout.startswith("No usage recorded yet")
    assert len(result.stdout.splitlines()) == 1
    data = json.loads(run_cli("usage", "--json").stdout)
    assert data["rows"] == [] and data["totals"]["requests"] == 0
    assert not missing.exists()  # reading never creates the ledger


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--since", "yesterdayish"], "--since 'yesterdayish' is not a day or a length of time"),
        (["--until", "3d"], "--until '3d': give a day"),
        (["--by", "year"], "--by 'year': use one of day, week, month, model, session"),
        (["--since", "2026-11-05", "--until", "2026-11-04"], "is not before --until"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(ledger: Path, args: list[str], words: str) -> None:
    result = run_cli("usage", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("cc-proxy: error: ")
    assert words in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_file_that_is_not_a_ledger_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "usage.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv(ENV_LEDGER_PATH, str(path))
    result = run_cli("usage")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"cc-proxy: error: cannot read the usage ledger {path}")
    assert len(result.stderr.splitlines()) == 1


def test_the_chart_shows_every_period_asked_for(ledger: Path) -> None:
    lines = run_cli("usage", "--since", "3d").stdout.splitlines()
    chart = lines[lines.index("Cost per day") + 1 : -1]
    assert [line.split()[1] for line in chart] == [local_day(-2), local_day(-1), local_day(0)]
    assert chart[0].endswith(" $0.00")  # no requests that day: an empty bar


def test_a_long_chart_keeps_the_latest_periods(ledger: Path) -> None:
    lines = run_cli("usage", "--since", "60d").stdout.splitlines()
    assert "Cost per day (the last 31)" in lines
    chart = lines[lines.index("Cost per day (the last 31)") + 1 : -1]
    assert len(chart) == 31
    assert chart[-1].split()[1] == local_day(0)


def test_json_by_model_names_each_model_once(ledger: Path) -> None:
    data = json.loads(run_cli("usage", "--json", "--by", "model").stdout)
    assert [row["model"] for row in data["rows"]] == ["kimi", "nemotron"]
    assert "by_model" not in data["rows"][0] and "models" not in data["rows"][0]
    assert data["rows"][1]["requests"] == 3
