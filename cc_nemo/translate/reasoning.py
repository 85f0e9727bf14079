"""Reasoning and output controls in each model's terms: thinking, effort, response_format."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cc_nemo.settings.catalog import ModelQuirks
from cc_nemo.translate.schema import sanitize_schema

_EFFORT_ORDER = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_EFFORT_ALIASES = {"xhigh": "high", "max": "high"}


def thinking_controls(request: Mapping, quirks: ModelQuirks) -> tuple[dict[str, Any], bool]:
    """Per-model reasoning switch/effort (docs/wire.md, "Request translation", Thinking and
    effort, per model); only values the model is known to accept, since others can 400."""
    wanted, level = _requested_reasoning(request)
    fields: dict[str, Any] = {}
    levels = quirks.effort_levels
    if wanted is True:
        if quirks.thinking_switch:
            fields["chat_template_kwargs"] = {quirks.thinking_switch: True}
        effort = _nearest_effort(level, [lvl for lvl in levels if lvl != "none"])
        if effort:
            fields["reasoning_effort"] = effort
    elif wanted is False:
        if quirks.thinking_switch:
            fields["chat_template_kwargs"] = {quirks.thinking_switch: False}
        if "none" in levels:
            fields["reasoning_effort"] = "none"
    else:
        effort = _nearest_effort(level, [lvl for lvl in levels if lvl != "none"])
        if effort:
            fields["reasoning_effort"] = effort
    enabled = wanted if wanted is not None else quirks.thinks_by_default
    return fields, enabled


def _requested_reasoning(request: Mapping) -> tuple[bool | None, str | None]:
    """(thinking on/off/unspecified, effort level) from `thinking` and `output_config.effort`."""
    output_config = request.get("output_config")
    effort = output_config.get("effort") if isinstance(output_config, Mapping) else None
    level = _EFFORT_ALIASES.get(effort, effort) if effort in _EFFORT_ORDER else None
    if level == "none":
        level = None
    thinking = request.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, Mapping) else None
    if kind == "disabled":
        return False, None
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if level is None and isinstance(budget, int) and not isinstance(budget, bool):
            level = "low" if budget < 4000 else "medium" if budget < 16000 else "high"
        return True, level
    if kind == "adaptive":
        return True, level
    return None, level


def _nearest_effort(level: str | None, allowed: list[str]) -> str | None:
    if level is None or not allowed:
        return None
    if level in allowed:
        return level
    rank = _rank(level)
    # Ties go to the stronger level: under-thinking hurts more than over-thinking here.
    return min(allowed, key=lambda lvl: (abs(_rank(lvl) - rank), -_rank(lvl)))


def _rank(level: str) -> int:
    return _EFFORT_ORDER.index(level) if level in _EFFORT_ORDER else 0


def response_format(request: Mapping) -> dict | None:
    """A json_schema output format (Claude Code's session titles) as OpenAI's response_format;
    `output_format` is the beta spelling."""
    output_config = request.get("output_config")
    fmt = output_config.get("format") if isinstance(output_config, Mapping) else None
    if fmt is None:
        fmt = request.get("output_format")
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        return None
    schema = fmt.get("schema")
    if not isinstance(schema, Mapping):
        return None
    return {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": sanitize_schema(schema)},
    }
