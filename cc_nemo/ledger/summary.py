"""The exit summary of one proxy session: from the ledger's rows (the source of truth), or from
running totals kept in memory when the ledger could not be written (docs/architecture.md,
"The usage ledger")."""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field

from cc_nemo.ledger.schema import RequestRecord


@dataclass(frozen=True)
class SessionSummary:
    """Totals over a session, for the one-glance summary after claude exits."""

    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost_usd: float
    # (answering alias, alias asked for) → how many requests a fallback answered.
    fallbacks: dict[tuple[str, str], int] = field(default_factory=dict)

    def render(self) -> str:
        """A short human summary (2 lines, one more per fallback pairing)."""
        if self.requests == 0:
            return "cc-proxy: no model requests were made."
        failed = f", {self.errors} failed" if self.errors else ""
        cached = f" (+{self.cache_read_tokens:,} cached)" if self.cache_read_tokens else ""
        lines = [
            f"cc-proxy: {self.requests} request{'s' if self.requests != 1 else ''}{failed}; "
            f"{self.input_tokens:,} input tokens{cached}, {self.output_tokens:,} output tokens",
            f"cc-proxy: estimated cost {_format_usd(self.cost_usd)} at catalog prices",
        ]
        for (answered_by, asked_for), count in sorted(self.fallbacks.items()):
            lines.append(
                f"cc-proxy: {count} request{'s' if count != 1 else ''} answered by "
                f"{answered_by}: {asked_for} out of capacity"
            )
        return "\n".join(lines)


def _format_usd(amount: float) -> str:
    if amount == 0:
        return "$0.00"
    if amount < 0.01:
        return f"${amount:.4f}"
    return f"${amount:,.2f}"


class SessionTally:
    """Running totals of a session's records: the summary without keeping every record."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read_tokens = 0
        self.cost_usd = 0.0
        self.fallbacks: Counter[tuple[str, str]] = Counter()

    def add(self, record: RequestRecord) -> None:
        self.requests += 1
        self.errors += record.failed
        self.input_tokens += record.input_tokens
        self.output_tokens += record.output_tokens
        self.cache_read_tokens += record.cache_read_tokens
        self.cost_usd += record.cost_usd
        if record.answered_by and record.fallback_from:
            self.fallbacks[(record.answered_by, record.fallback_from)] += 1

    def summary(self) -> SessionSummary:
        return SessionSummary(
            requests=self.requests,
            errors=self.errors,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cost_usd=self.cost_usd,
            fallbacks=dict(self.fallbacks),
        )


# `failed` of RequestRecord, in SQL.
_TOTALS_SQL = """
SELECT count(*),
       coalesce(sum(status >= 400 OR error_type IS NOT NULL), 0),
       coalesce(sum(input_tokens), 0),
       coalesce(sum(output_tokens), 0),
       coalesce(sum(cache_read_tokens), 0),
       coalesce(sum(cost_usd), 0.0)
FROM requests WHERE proxy_session = ?
"""
_FALLBACKS_SQL = """
SELECT answered_by, fallback_from, count(*)
FROM requests
WHERE proxy_session = ? AND answered_by <> '' AND fallback_from <> ''
GROUP BY answered_by, fallback_from
"""


def stored_summary(connection: sqlite3.Connection, proxy_session: str) -> SessionSummary:
    """The summary of one proxy session's rows in the ledger."""
    requests, errors, input_tokens, output_tokens, cached, cost = connection.execute(
        _TOTALS_SQL, (proxy_session,)
    ).fetchone()
    fallbacks = {
        (answered_by, asked_for): count
        for answered_by, asked_for, count in connection.execute(_FALLBACKS_SQL, (proxy_session,))
    }
    return SessionSummary(
        requests=requests,
        errors=errors,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cached,
        cost_usd=cost,
        fallbacks=fallbacks,
    )
