"""Resolved runtime settings: what the proxy needs to run, built once by the CLI.

Everything here is plain data so a test builds a proxy in one line; reading the
config file, the keyring and the environment happens in `config.py` and
`credentials.py`, never here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from cc_nemo.settings.catalog import CLOUDFLARE_MODEL_PREFIX, Catalog, ModelSpec, bare_model_id

ProviderKind = Literal["cloudflare", "openai", "anthropic"]
# AI Gateway's two OpenAI-compatible paths for Workers AI (docs/wire.md, "Endpoints and headers"):
# `compat` (`{gateway}/compat/chat/completions`, ids `workers-ai/@cf/...`; Cloudflare calls it
# deprecated but it works) and `workers-ai` (`{gateway}/workers-ai/v1/chat/completions`, bare
# `@cf/...` ids).
GatewayEndpoint = Literal["compat", "workers-ai"]
GATEWAY_ENDPOINTS: tuple[GatewayEndpoint, ...] = ("compat", "workers-ai")
DEFAULT_GATEWAY_ENDPOINT: GatewayEndpoint = "compat"
GATEWAY_ENDPOINT_PATHS: dict[GatewayEndpoint, str] = {
    "compat": "/compat/chat/completions",
    "workers-ai": "/workers-ai/v1/chat/completions",
}
GATEWAY_HOST = "gateway.ai.cloudflare.com"
GatewayBackoff = Literal["constant", "linear", "exponential"]


@dataclass(frozen=True)
class GatewayOptions:
    """AI Gateway's per-request settings (`[gateway]` in config.toml), sent as `cf-aig-*`
    headers; None sends nothing, so the gateway's own settings apply. Never secrets."""

    # Seconds a response stays in the gateway's cache (`cf-aig-cache-ttl`). Off by default:
    # Claude Code's turns are never byte-identical, so a cache could only serve stale answers.
    cache_ttl: int | None = None
    # Milliseconds the gateway waits for the provider's first byte (`cf-aig-request-timeout`).
    request_timeout_ms: int | None = None
    # The gateway's own retries of a failed provider request (`cf-aig-max-attempts`, 1-5),
    # their delay (`cf-aig-retry-delay`, ms) and its growth (`cf-aig-backoff`).
    max_attempts: int | None = None
    retry_delay_ms: int | None = None
    backoff: GatewayBackoff | None = None

    def headers(self) -> dict[str, str]:
        sent = {
            "cf-aig-cache-ttl": self.cache_ttl,
            "cf-aig-request-timeout": self.request_timeout_ms,
            "cf-aig-max-attempts": self.max_attempts,
            "cf-aig-retry-delay": self.retry_delay_ms,
            "cf-aig-backoff": self.backoff,
        }
        return {name: str(value) for name, value in sent.items() if value is not None}


@dataclass(frozen=True)
class ProviderSettings:
    """Where upstream requests go and how they authenticate.

    kind:
      - "cloudflare": AI Gateway, on the path `endpoint` names (see GatewayEndpoint);
        `cf-aig-authorization` + optional `Authorization`.
      - "openai": any OpenAI-compatible base URL (Workers AI REST, OpenRouter, Ollama,
        vLLM, LM Studio); requests go to `{base_url}/chat/completions`.
      - "anthropic": an endpoint that already speaks Anthropic Messages; requests are
        forwarded untranslated to `{base_url}/v1/messages` but for auth and model mapping.
    """

    kind: ProviderKind
    base_url: str
    # Upstream auth headers. Secret values: never log, never put in an error message.
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    # Which AI Gateway path serves a "cloudflare" provider.
    endpoint: GatewayEndpoint = DEFAULT_GATEWAY_ENDPOINT
    # `cf-aig-*` request settings, sent only to an AI Gateway.
    gateway: GatewayOptions = field(default_factory=GatewayOptions)

    @property
    def is_ai_gateway(self) -> bool:
        """Requests go through Cloudflare AI Gateway (which reads `cf-aig-*` headers): the
        cloudflare kind, or another kind pointed at one of the gateway's provider paths."""
        return self.kind == "cloudflare" or urlsplit(self.base_url).hostname == GATEWAY_HOST

    @property
    def gateway_headers(self) -> dict[str, str]:
        """The configured `cf-aig-*` settings, for an AI Gateway only."""
        return self.gateway.headers() if self.is_ai_gateway else {}

    @property
    def chat_completions_url(self) -> str:
        base = self.base_url.rstrip("/")
        if self.kind == "cloudflare":
            return base + GATEWAY_ENDPOINT_PATHS[self.endpoint]
        if self.kind == "anthropic":
            return f"{base}/v1/messages" if not base.endswith("/v1") else f"{base}/messages"
        return f"{base}/chat/completions"

    def upstream_model_id(self, model: str) -> str:
        """The model id as this provider wants it: `workers-ai/@cf/...` on AI Gateway's `compat`
        path, where the prefix names the provider; bare everywhere else."""
        if self.kind == "cloudflare" and self.endpoint == "compat":
            if model.startswith("@cf/") or model.startswith("@hf/"):
                return CLOUDFLARE_MODEL_PREFIX + model
            return model
        return bare_model_id(model)


@dataclass(frozen=True)
class ProxySettings:
    """Everything one proxy instance needs; immutable for the proxy's lifetime."""

    provider: ProviderSettings
    catalog: Catalog
    main_model: ModelSpec
    small_model: ModelSpec
    session_token: str = field(repr=False)
    subagent_model: ModelSpec | None = None
    # Seconds to wait for the upstream's first byte (reasoning models can think for minutes).
    first_byte_timeout: float = 600.0
    # Seconds a streamed answer holds its status line waiting for the upstream's first content
    # (docs/architecture.md, "The commit rule"); then 200, `message_start` and pings. Kept under
    # Claude Code's own wait for response headers, which `run` sets to match (claude_env.py).
    commit_timeout: float = 120.0
    # Seconds of silence tolerated between upstream chunks once streaming has begun.
    read_timeout: float = 600.0
    connect_timeout: float = 15.0
    # Proxy-side retries before the first upstream byte (capacity, 5xx, connect errors).
    max_retries: int = 2
    retry_base_delay: float = 0.5
    # Seconds of upstream silence before a `ping` event is sent to the client.
    ping_interval: float = 10.0
    max_body_bytes: int = 32 * 1024 * 1024
    log_file: Path | None = None
    log_bodies: bool = False
    # Allow a non-loopback bind/Host (serve --host); only with an explicit token.
    allow_remote: bool = False
    # Models that answer in a model's place when it stays out of capacity or unreachable after
    # the proxy's retries, in order, by the alias they stand in for (`[models.X] fallbacks`).
    fallbacks: Mapping[str, tuple[ModelSpec, ...]] = field(default_factory=dict)

    def fallbacks_for(self, spec: ModelSpec) -> tuple[ModelSpec, ...]:
        return tuple(self.fallbacks.get(spec.alias, ()))
