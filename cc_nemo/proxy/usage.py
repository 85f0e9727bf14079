"""Per-request usage records and the session summary printed when claude exits."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RequestRecord:
    """One `/v1/messages` request as the ledger remembers it."""

    request_id: str
    model: str
    upstream_model: str
    status: int
    stream: bool
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost_usd: float
    ttft_ms: float | None
    duration_ms: float
    error_type: str | None
    # When a fallback answered: the alias asked for, and the alias that answered.
    fallback_from: str | None = None
    answered_by: str | None = None

    @property
    def failed(self) -> bool:
        """An HTTP error, or a stream that ended in an `error` event."""
        return self.status >= 400 or self.error_type is not None


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


class UsageLedger:
    """Collects the records of one proxy session (single event loop: no locking needed)."""

    def __init__(self) -> None:
        self._records: list[RequestRecord] = []

    def record(self, record: RequestRecord) -> None:
        self._records.append(record)

    @property
    def records(self) -> tuple[RequestRecord, ...]:
        return tuple(self._records)

    def summary(self) -> SessionSummary:
        records = self._records
        return SessionSummary(
            requests=len(records),
            errors=sum(1 for r in records if r.failed),
            input_tokens=sum(r.input_tokens for r in records),
            output_tokens=sum(r.output_tokens for r in records),
            cache_read_tokens=sum(r.cache_read_tokens for r in records),
            cost_usd=sum(r.cost_usd for r in records),
            fallbacks=dict(
                Counter(
                    (r.answered_by, r.fallback_from)
                    for r in records
                    if r.answered_by and r.fallback_from
                )
            ),
        )
