"""Token usage in Anthropic's convention (input net of cache reads) from OpenAI usage (docs/wire.md, "Response translation")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    """What a reply cost; `input_tokens` excludes cached tokens, as Anthropic reports it."""

    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    # Of output_tokens, how many the model spent thinking (OpenAI's
    # `completion_tokens_details.reasoning_tokens`); the ledger keeps it, Anthropic has no field.
    reasoning_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        """The Anthropic `usage` object."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
        }


def usage_from_openai(usage: Mapping | None, *, fallback_input: int, fallback_output: int) -> Usage:
    """Map OpenAI usage; fields the upstream left out fall back to our estimates."""
    if not isinstance(usage, Mapping):
        return Usage(max(fallback_input, 0), max(fallback_output, 0))
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = cache_write = 0
    if isinstance(details, Mapping):
        cached = _count(details.get("cached_tokens")) or 0
        cache_write = _count(details.get("cache_write_tokens")) or 0
    if prompt is None:
        prompt = max(fallback_input, 0) + cached
    reasoning = 0
    output_details = usage.get("completion_tokens_details")
    if isinstance(output_details, Mapping):
        reasoning = _count(output_details.get("reasoning_tokens")) or 0
    return Usage(
        input_tokens=max(prompt - cached, 0),
        output_tokens=completion if completion is not None else max(fallback_output, 0),
        cache_read_input_tokens=cached,
        cache_creation_input_tokens=cache_write,
        reasoning_tokens=reasoning,
    )


def _count(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value >= 0:
        return int(value)
    return None
