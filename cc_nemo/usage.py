"""Per-request usage records and the session summary printed when claude exits."""

from __future__ import annotations

from dataclasses import dataclass


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

    def render(self) -> str:
        """A short human summary (1-2 lines)."""
        if self.requests == 0:
            return "cc-proxy: no model requests were made."
        failed = f", {self.errors} failed" if self.errors else ""
        cached = f" (+{self.cache_read_tokens:,} cached)" if self.cache_read_tokens else ""
        return (
            f"cc-proxy: {self.requests} request{'s' if self.requests != 1 else ''}{failed}; "
            f"{self.input_tokens:,} input tokens{cached}, {self.output_tokens:,} output tokens\n"
            f"cc-proxy: estimated cost {_format_usd(self.cost_usd)} at catalog prices"
        )


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
        )
