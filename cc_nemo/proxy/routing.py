"""Which model spec serves a model name sent by the client (pure)."""

from __future__ import annotations

from cc_nemo.settings.catalog import ModelSpec, UnknownModelError
from cc_nemo.settings.runtime import CLOUDFLARE_MODEL_PREFIX, ProxySettings

DISCOVERY_PREFIX = "claude-cf-"
# Names Claude Code's `--model` shorthands stand for; treated like the claude-* ids they expand to.
_CLAUDE_SHORTHANDS = frozenset({"opus", "sonnet", "haiku", "default"})


def discovery_id(alias: str) -> str:
    """The `/v1/models` id for an alias; contains "claude" so Claude Code's discovery keeps it."""
    return DISCOVERY_PREFIX + alias


def session_specs(settings: ProxySettings) -> list[ModelSpec]:
    """The session's own models first (main, small, subagent), then the rest of the catalog."""
    specs: list[ModelSpec] = []
    for spec in (settings.main_model, settings.small_model, settings.subagent_model):
        if spec is not None and spec not in specs:
            specs.append(spec)
    for spec in settings.catalog.models.values():
        if spec not in specs:
            specs.append(spec)
    return specs


def model_for_request(settings: ProxySettings, name: str) -> ModelSpec | None:
    """Map a requested model name to a spec, or None when nothing matches.

    Order: the session's aliases and upstream ids, discovery ids, catalog aliases and ids,
    then any Claude name (haiku → small model, everything else → main model)."""
    for spec in (settings.main_model, settings.small_model, settings.subagent_model):
        if spec is not None and name in (
            spec.alias,
            spec.model,
            spec.model.removeprefix(CLOUDFLARE_MODEL_PREFIX),
        ):
            return spec
    lookup = name.removeprefix(DISCOVERY_PREFIX)
    for spec in (settings.main_model, settings.small_model, settings.subagent_model):
        if spec is not None and lookup == spec.alias:
            return spec
    try:
        return settings.catalog.resolve(lookup)
    except UnknownModelError:
        pass
    lowered = name.lower()
    if "claude" in lowered or lowered in _CLAUDE_SHORTHANDS:
        return settings.small_model if "haiku" in lowered else settings.main_model
    return None


def known_names(settings: ProxySettings) -> list[str]:
    """Aliases to list in a "model not found" message."""
    return [spec.alias for spec in session_specs(settings)]
