"""The exit summary: its text, the totals in memory, and the same totals read from the ledger."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cc_nemo.ledger.schema import INSERT_SQL, connect
from cc_nemo.ledger.summary import SessionSummary, SessionTally, stored_summary
from cc_nemo.proxy.usage import UsageLedger
from tests.ledger.records import approx_cost, make_record

MIXED_SESSION = [
    make_record(),
    make_record(input_tokens=500, cache_read_tokens=4000, cost_usd=0.002),
    make_record(status=529, input_tokens=0, output_tokens=0, cost_usd=0.0,
                error_type="overloaded_error"),
    make_record(status=200, error_type="api_error", output_tokens=3),
    make_record(fallback_from="nemotron", answered_by="kimi"),
    make_record(fallback_from="nemotron", answered_by="kimi", status=499,
                error_type="client_closed"),
]  # fmt: skip
MIXED_TOTALS = SessionSummary(
    requests=6,
    errors=3,
    input_tokens=4500,
    output_tokens=803,
    cache_read_tokens=4000,
    cost_usd=pytest.approx(0.006),
    fallbacks={("kimi", "nemotron"): 2},
)


def test_summary_counts_fallbacks_per_pairing() -> None:
    ledger = UsageLedger()
    for n in range(3):
        ledger.record(make_record(request_id=f"r{n}", fallback_from="nemotron", answered_by="kimi"))
    ledger.record(make_record(request_id="r9"))
    summary = ledger.summary()
    assert summary.fallbacks == {("kimi", "nemotron"): 3}
    assert summary.render().splitlines()[-1] == (
        "cc-proxy: 3 requests answered by kimi: nemotron out of capacity"
    )


def test_memory_totals_count_requests_errors_tokens_and_cost() -> None:
    ledger = UsageLedger()
    for record in MIXED_SESSION:
        ledger.record(record)
    assert ledger.summary() == MIXED_TOTALS
    assert ledger.records == tuple(MIXED_SESSION)


def test_the_ledger_rows_give_the_same_totals_as_memory(tmp_path: Path) -> None:
    connection = connect(tmp_path / "usage.sqlite3")
    assert connection is not None
    session = "a" * 32
    other = make_record(proxy_session="b" * 32, input_tokens=10**6)
    ours = [replace(record, proxy_session=session) for record in MIXED_SESSION]
    with connection:
        connection.executemany(INSERT_SQL, [record.row() for record in [*ours, other]])
    tally = SessionTally()
    for record in MIXED_SESSION:
        tally.add(record)

    assert stored_summary(connection, session) == MIXED_TOTALS
    assert stored_summary(connection, session) == approx_cost(tally.summary())
    assert stored_summary(connection, "c" * 32) == SessionSummary(0, 0, 0, 0, 0, 0.0)


def test_memory_keeps_the_latest_records_and_totals_of_all() -> None:
    ledger = UsageLedger(keep_recent=3)
    for n in range(10):
        ledger.record(make_record(request_id=f"r{n}", output_tokens=1))
    assert [r.request_id for r in ledger.records] == ["r7", "r8", "r9"]
    assert (ledger.summary().requests, ledger.summary().output_tokens) == (10, 10)


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        (SessionSummary(0, 0, 0, 0, 0, 0.0), "cc-proxy: no model requests were made."),
        (
            SessionSummary(1, 0, 1234, 56, 0, 0.0042),
            "cc-proxy: 1 request; 1,234 input tokens, 56 output tokens\n"
            "cc-proxy: estimated cost $0.0042 at catalog prices",
        ),
        (
            SessionSummary(12, 2, 182_340, 3_211, 120_000, 1.5),
            "cc-proxy: 12 requests, 2 failed; 182,340 input tokens (+120,000 cached), "
            "3,211 output tokens\ncc-proxy: estimated cost $1.50 at catalog prices",
        ),
    ],
)
def test_summary_render(summary: SessionSummary, expected: str) -> None:
    assert summary.render() == expected
