"""The environment `claude` runs with: the user's own, pointed at this proxy.

Pure: a function of the user's environment and the resolved settings, so every variable and
every reason for it is testable without spawning anything. docs/wire.md, "Claude Code's
environment", gives the measurement behind each choice.
"""

from __future__ import annotations

from collections.abc import Mapping

from cc_nemo.settings.catalog import ModelSpec
from cc_nemo.settings.runtime import ProxySettings

# Claude Code uses 32000 for a model name it does not know; more only shrinks the room left for
# input (it reserves the output budget inside the window) and the proxy clamps per request anyway.
MAX_OUTPUT_TOKENS_CAP = 32_000
# Claude Code's own default per-request timeout; we only ever raise it.
CLAUDE_DEFAULT_API_TIMEOUT_MS = 600_000
# Head-room over the proxy's own upstream wait, so the proxy (which knows why) reports a slow
# upstream before claude gives up on its own with a generic timeout and retries the turn.
API_TIMEOUT_MARGIN_S = 60
LOOPBACK_NO_PROXY = ("127.0.0.1", "localhost")
# Head-room over the proxy's hold before claude gives up on the headers and re-sends; claude
# clamps its first-byte window to 10 s .. 30 min.
FIRST_BYTE_MARGIN_S = 60
CLAUDE_FIRST_BYTE_MIN_MS = 10_000
CLAUDE_FIRST_BYTE_MAX_MS = 30 * 60 * 1000

# Removed from the user's environment whatever their value.
REMOVED_VARS: tuple[str, ...] = (
    # An API key makes interactive claude stop at "use this API key?" (default No), and with the
    # auth token also set it reports an auth conflict (docs/wire.md, "Request translation").
    "ANTHROPIC_API_KEY",
    # The user's Anthropic subscription token must not be offered to a local proxy.
    "CLAUDE_CODE_OAUTH_TOKEN",
    # Any of these makes claude talk to a cloud provider and ignore ANTHROPIC_BASE_URL.
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
)


def claude_model_name(spec: ModelSpec) -> str:
    """The name claude sends for a model: our alias, which the proxy maps back to the spec."""
    return spec.alias


def forced_vars(settings: ProxySettings, base_url: str) -> dict[str, str]:
    """Variables that must win over the user's environment, or claude would not use the proxy
    (or would use the wrong model)."""
    main = claude_model_name(settings.main_model)
    small = claude_model_name(settings.small_model)
    subagent = claude_model_name(settings.subagent_model or settings.main_model)
    return {
        # Where claude sends every API call; without /v1 (claude appends /v1/messages).
        "ANTHROPIC_BASE_URL": base_url,
        # Sent as `Authorization: Bearer`; the proxy serves nothing without it.
        "ANTHROPIC_AUTH_TOKEN": settings.session_token,
        # The main conversation's model (`--model` in the claude args still wins).
        "ANTHROPIC_MODEL": main,
        # claude's own aliases (`--model opus|sonnet|haiku`, `/model`, the Agent tool's `model`)
        # must land on our models too, not on Anthropic names the proxy would have to guess.
        "ANTHROPIC_DEFAULT_OPUS_MODEL": main,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": main,
        "ANTHROPIC_DEFAULT_FABLE_MODEL": main,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": small,
        # Side requests (session titles and the like) go to the small model.
        "ANTHROPIC_SMALL_FAST_MODEL": small,
        # Subagent turns (Agent tool) go to the subagent model; the main one unless chosen.
        "CLAUDE_CODE_SUBAGENT_MODEL": subagent,
        # For `cc-proxy statusline`, which claude runs with this environment: each model's real
        # window, as Claude Code knows only the one of CLAUDE_CODE_MAX_CONTEXT_TOKENS.
        "CC_PROXY_MODEL_WINDOWS": model_windows(settings),
    }


def model_windows(settings: ProxySettings) -> str:
    """`alias=window` for every model the session can switch to, comma-separated."""
    return ",".join(
        f"{spec.alias}={spec.context_window}" for spec in settings.catalog.models.values()
    )


def default_vars(settings: ProxySettings) -> dict[str, str]:
    """Variables with a sensible value for a proxied model that the user may still override
    by exporting their own."""
    return {
        # Claude Code assumes a 1M-token window for names it does not know and would never
        # auto-compact; the real window makes it compact before the upstream rejects the turn.
        "CLAUDE_CODE_AUTO_COMPACT_WINDOW": str(compact_window(settings)),
        # The window Claude Code reports and meters (`/context`, the result's contextWindow):
        # a name it does not know is assumed to have 1M tokens, 4x Nemotron's real window.
        "CLAUDE_CODE_MAX_CONTEXT_TOKENS": str(settings.main_model.context_window),
        # `/model` lists the proxy's models ("From gateway"): claude asks GET /v1/models and keeps
        # the ids containing "claude", which is why the proxy names them claude-cf-<alias>.
        "CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1",
        # The picker's entry for the session's model, by the name a person knows.
        "ANTHROPIC_CUSTOM_MODEL_OPTION": claude_model_name(settings.main_model),
        "ANTHROPIC_CUSTOM_MODEL_OPTION_NAME": settings.main_model.display_name,
        "ANTHROPIC_CUSTOM_MODEL_OPTION_DESCRIPTION": model_description(settings.main_model),
        # The picker's entries for claude's own slots say which of our models each one is,
        # instead of "Custom Opus model" or an Anthropic model at Anthropic's price.
        **slot_labels(settings),
        # Stay within what the model can produce (see MAX_OUTPUT_TOKENS_CAP).
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(max_output_tokens(settings.main_model)),
        # Reasoning models can think for minutes before the first token (see API_TIMEOUT_MARGIN_S).
        "API_TIMEOUT_MS": str(api_timeout_ms(settings)),
        # The proxy holds the status line until the upstream's first content (commit_timeout);
        # claude 2.1.332+ re-sends a request whose headers take longer than this window.
        "CLAUDE_STREAM_FIRST_BYTE_TIMEOUT_MS": str(first_byte_window_ms(settings)),
        # No update checks, feedback surveys or error reports to Anthropic: nothing there
        # concerns a proxied model, and it keeps the session working offline.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        # Interactive claude otherwise tries to install the official plugin marketplace from the
        # internet even with the nonessential-traffic switch (docs/wire.md, "Claude Code's environment").
        "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
        # A failed stream would be re-sent as a second, non-streaming request: double the upstream
        # cost, and a 300 s limit that a reasoning model can exceed (docs/wire.md, "Claude Code's environment").
        "CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK": "1",
    }


# claude's model slots, as its picker lists them, and the env prefix that names each.
_SLOTS = (("Opus", "OPUS"), ("Sonnet", "SONNET"), ("Fable", "FABLE"), ("Haiku", "HAIKU"))


def slot_labels(settings: ProxySettings) -> dict[str, str]:
    """`ANTHROPIC_DEFAULT_<SLOT>_MODEL_NAME` / `_DESCRIPTION` for each of claude's slots."""
    labels: dict[str, str] = {}
    for slot, prefix in _SLOTS:
        spec = settings.small_model if slot == "Haiku" else settings.main_model
        labels[f"ANTHROPIC_DEFAULT_{prefix}_MODEL_NAME"] = f"{spec.alias} (as {slot})"
        labels[f"ANTHROPIC_DEFAULT_{prefix}_MODEL_DESCRIPTION"] = (
            f"{spec.display_name} · {model_description(spec)}"
        )
    return labels


def model_description(spec: ModelSpec) -> str:
    """One line for the picker: the window and the price, which is what tells models apart."""
    window = f"{spec.context_window // 1000}k context"
    if spec.input_price_per_mtok or spec.output_price_per_mtok:
        price = f"${spec.input_price_per_mtok:g} in / ${spec.output_price_per_mtok:g} out per Mtok"
        return f"{window} · {price} · via cc-proxy"
    return f"{window} · via cc-proxy"


def compact_window(settings: ProxySettings) -> int:
    """The context window claude should compact against: the smallest of the models that carry
    a conversation (the small model only answers short side requests)."""
    windows = [settings.main_model.context_window]
    if settings.subagent_model is not None:
        windows.append(settings.subagent_model.context_window)
    return min(windows)


def max_output_tokens(spec: ModelSpec) -> int:
    """Output budget for claude's requests: the model's limit, capped, and never more than half
    the window so a long conversation still has room for its input."""
    return max(1, min(spec.max_output_tokens, MAX_OUTPUT_TOKENS_CAP, spec.context_window // 2))


def api_timeout_ms(settings: ProxySettings) -> int:
    """claude's per-request timeout: never below its default, always above the proxy's wait."""
    proxy_wait_ms = int((settings.first_byte_timeout + API_TIMEOUT_MARGIN_S) * 1000)
    return max(CLAUDE_DEFAULT_API_TIMEOUT_MS, proxy_wait_ms)


def first_byte_window_ms(settings: ProxySettings) -> int:
    """claude's wait for response headers: past the proxy's hold, within claude's clamp."""
    wanted = int((settings.commit_timeout + FIRST_BYTE_MARGIN_S) * 1000)
    return min(max(wanted, CLAUDE_FIRST_BYTE_MIN_MS), CLAUDE_FIRST_BYTE_MAX_MS)


def no_proxy_value(base_env: Mapping[str, str]) -> str:
    """The user's NO_PROXY/no_proxy entries plus loopback, so an HTTP(S)_PROXY in the
    environment never routes claude's calls to 127.0.0.1 through a corporate proxy."""
    entries: list[str] = []
    for name in ("NO_PROXY", "no_proxy"):
        for entry in base_env.get(name, "").split(","):
            entry = entry.strip()
            if entry and entry not in entries:
                entries.append(entry)
    entries.extend(host for host in LOOPBACK_NO_PROXY if host not in entries)
    return ",".join(entries)


def proxy_vars(
    settings: ProxySettings, base_url: str, base_env: Mapping[str, str]
) -> dict[str, str]:
    """Everything cc-proxy sets for claude, after the user's overrides (what `serve` prints)."""
    values = forced_vars(settings, base_url)
    for name, value in default_vars(settings).items():
        values[name] = base_env.get(name, value)
    no_proxy = no_proxy_value(base_env)
    values["NO_PROXY"] = no_proxy
    values["no_proxy"] = no_proxy
    return values


def build_claude_env(
    base_env: Mapping[str, str], settings: ProxySettings, base_url: str
) -> dict[str, str]:
    """The complete environment for the claude process."""
    env = {name: value for name, value in base_env.items() if name not in REMOVED_VARS}
    env.update(proxy_vars(settings, base_url, base_env))
    return env
