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

from cc_nemo.settings.catalog import CLOUDFLARE_MODEL_PREFIX, Catalog, ModelSpec, bare_model_id

ProviderKind = Literal["cloudflare", "openai", "anthropic"]


@dataclass(frozen=True)
class ProviderSettings:
    """Where upstream requests go and how they authenticate.

    kind:
      - "cloudflare": AI Gateway's OpenAI-compatible `/compat/chat/completions`
        (model ids `workers-ai/@cf/...`), `cf-aig-authorization` + optional `Authorization`.
      - "openai": any OpenAI-compatible base URL (Workers AI REST, OpenRouter, Ollama,
        vLLM, LM Studio); requests go to `{base_url}/chat/completions`.
      - "anthropic": an endpoint that already speaks Anthropic Messages; requests are
        forwarded untranslated to `{base_url}/v1/messages` but for auth and model mapping.
    """

    kind: ProviderKind
    base_url: str
    # Upstream auth headers. Secret values: never log, never put in an error message.
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def chat_completions_url(self) -> str:
        base = self.base_url.rstrip("/")
        if self.kind == "cloudflare":
            return f"{base}/compat/chat/completions"
        if self.kind == "anthropic":
            return f"{base}/v1/messages" if not base.endswith("/v1") else f"{base}/messages"
        return f"{base}/chat/completions"

    def upstream_model_id(self, model: str) -> str:
        """The model id as this provider wants it."""
        if self.kind == "cloudflare":
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
