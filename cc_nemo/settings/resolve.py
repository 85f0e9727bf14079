"""Turn config + environment + stored secrets into the settings the proxy runs with.

Precedence everywhere: command-line argument, then environment variable, then
`config.toml`, then the built-in default, so CI and containers need no keyring.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit

from cc_nemo.errors import UserError
from cc_nemo.settings.catalog import (
    DEFAULT_MODEL_ALIAS,
    Catalog,
    ModelSpec,
    UnknownModelError,
    ad_hoc_spec,
)
from cc_nemo.settings.config import PROVIDERS, Config, load_config, proxy_log_path
from cc_nemo.settings.runtime import (
    DEFAULT_GATEWAY_ENDPOINT,
    GATEWAY_ENDPOINTS,
    GatewayEndpoint,
    GatewayOptions,
    ProviderKind,
    ProviderSettings,
    ProxySettings,
)

if TYPE_CHECKING:  # credentials pulls in the secrets machinery; import it only when used
    from cc_nemo.settings.credentials import SecretSource

SettingSource = Literal["argument", "env", "config", "default", "missing"]

ENV_PROVIDER = "CC_PROXY_PROVIDER"
ENV_GATEWAY_URL = "CF_AI_GATEWAY_URL"
ENV_BASE_URL = "CC_PROXY_BASE_URL"
ENV_MODEL = "CC_PROXY_MODEL"
ENV_SMALL_MODEL = "CC_PROXY_SMALL_MODEL"
ENV_SUBAGENT_MODEL = "CC_PROXY_SUBAGENT_MODEL"
ENV_ACCOUNT_ID = "CLOUDFLARE_ACCOUNT_ID"
ENV_GATEWAY_ENDPOINT = "CC_PROXY_GATEWAY_ENDPOINT"

GATEWAY_HOST_URL = "https://gateway.ai.cloudflare.com/v1"
NO_CREDENTIALS = (
    "No credentials found: run `cc-proxy login` (or set CF_AI_GATEWAY_URL and CF_AIG_TOKEN)"
)
_NAME_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# Suffixes people paste along with the gateway URL; the proxy adds the endpoint itself.
# Longest first: each one names the endpoint it was pasted from.
_GATEWAY_SUFFIXES: tuple[tuple[str, GatewayEndpoint | None], ...] = (
    ("/compat/chat/completions", "compat"),
    ("/workers-ai/v1/chat/completions", "workers-ai"),
    ("/workers-ai/v1", "workers-ai"),
    ("/chat/completions", None),
    ("/compat", "compat"),
)


@dataclass(frozen=True)
class Sourced:
    """A setting's value and where it came from (for `cc-proxy status`)."""

    value: str | None
    source: SettingSource


def _env(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def _pick(env_name: str, config_value: str | None) -> Sourced:
    if (value := _env(env_name)) is not None:
        return Sourced(value, "env")
    if config_value:
        return Sourced(config_value, "config")
    return Sourced(None, "missing")


def provider_kind(config: Config) -> Sourced:
    """Which provider to use; setting a provider's URL in the environment selects it."""
    explicit = _env(ENV_PROVIDER)
    if explicit is not None:
        if explicit.lower() not in PROVIDERS:
            raise UserError(
                f"{ENV_PROVIDER} must be one of {', '.join(PROVIDERS)}, not {explicit!r}"
            )
        return Sourced(explicit.lower(), "env")
    if _env(ENV_GATEWAY_URL):
        return Sourced("cloudflare", "env")
    if _env(ENV_BASE_URL):
        generic = config.provider if config.provider in ("openai", "anthropic") else "openai"
        return Sourced(generic, "env")
    if config.provider:
        return Sourced(config.provider, "config")
    if config.base_url and not config.gateway_url:
        return Sourced("openai", "config")
    return Sourced("cloudflare", "default")


def gateway_url(config: Config) -> Sourced:
    return _pick(ENV_GATEWAY_URL, config.gateway_url)


def base_url(config: Config) -> Sourced:
    return _pick(ENV_BASE_URL, config.base_url)


def gateway_endpoint(config: Config) -> Sourced:
    """Which AI Gateway path serves the cloudflare provider: environment, config, `compat`."""
    explicit = _env(ENV_GATEWAY_ENDPOINT)
    if explicit is not None:
        if explicit.lower() not in GATEWAY_ENDPOINTS:
            raise UserError(
                f"{ENV_GATEWAY_ENDPOINT} must be one of {', '.join(GATEWAY_ENDPOINTS)}, "
                f"not {explicit!r}"
            )
        return Sourced(explicit.lower(), "env")
    configured = config.gateway.get("endpoint")
    if isinstance(configured, str):
        return Sourced(configured, "config")
    return Sourced(DEFAULT_GATEWAY_ENDPOINT, "default")


def gateway_options(config: Config) -> GatewayOptions:
    """The `cf-aig-*` request settings of `[gateway]` (validated when the file was read)."""
    settings = {key: value for key, value in config.gateway.items() if key != "endpoint"}
    return GatewayOptions(**settings)  # type: ignore[arg-type]


def endpoint_in_url(url: str) -> GatewayEndpoint | None:
    """The endpoint a pasted gateway URL ends with (`…/workers-ai/v1`), if it names one."""
    url = url.strip().rstrip("/")
    for suffix, endpoint in _GATEWAY_SUFFIXES:
        if url.endswith(suffix):
            return endpoint
    return None


def normalize_gateway_url(url: str) -> str:
    """Check an AI Gateway URL (`…/v1/{account_id}/{gateway}`) and drop pasted endpoint suffixes."""
    url = url.strip().rstrip("/")
    for suffix, _ in _GATEWAY_SUFFIXES:
        if url.endswith(suffix):
            url = url[: -len(suffix)]
            break
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or len(segments) < 3
        or segments[-3] != "v1"
        or not all(_NAME_PART.match(s) for s in segments[-2:])
    ):
        raise UserError(
            "the AI Gateway URL must look like "
            "https://gateway.ai.cloudflare.com/v1/{account_id}/{gateway}"
        )
    return url


def gateway_url_from_parts(account_id: str, gateway: str) -> str:
    """Build the AI Gateway URL from an account id and a gateway name."""
    account_id, gateway = account_id.strip(), gateway.strip()
    if not re.fullmatch(r"[0-9a-fA-F]{32}", account_id):
        raise UserError(
            "the Cloudflare account id is 32 hexadecimal characters "
            "(dashboard → Workers AI or the URL of any dashboard page)"
        )
    if not _NAME_PART.match(gateway):
        raise UserError(f"invalid gateway name {gateway!r}: use letters, digits, '-' or '_'")
    return f"{GATEWAY_HOST_URL}/{account_id.lower()}/{gateway}"


def normalize_base_url(url: str) -> str:
    """Check an OpenAI/Anthropic-compatible base URL and drop a pasted endpoint suffix."""
    url = url.strip().rstrip("/")
    for suffix in ("/chat/completions", "/messages"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
            break
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(
            f"the base URL must start with http:// or https:// (got {url!r}), "
            "e.g. http://localhost:11434/v1"
        )
    return url


def account_id(config: Config) -> str | None:
    """The Cloudflare account id: from the environment, the gateway URL or a Workers AI base URL."""
    if (explicit := _env(ENV_ACCOUNT_ID)) is not None:
        return explicit
    for candidate, marker in (
        (gateway_url(config).value, "v1"),
        (base_url(config).value, "accounts"),
    ):
        segments = [s for s in urlsplit(candidate or "").path.split("/") if s]
        if marker in segments:
            index = segments.index(marker)
            if index + 1 < len(segments) and _NAME_PART.match(segments[index + 1]):
                return segments[index + 1]
    return None


COMPANION_SOURCES: dict[str, tuple[SecretSource, ...]] = {
    "env": ("env",),
    "file": ("env", "file"),
    "keyring": ("env", "file", "keyring"),
    "missing": ("env", "file", "keyring"),
}


def resolve_provider(config: Config) -> ProviderSettings:
    """Where upstream requests go and with which auth headers (secrets stay out of repr)."""
    from cc_nemo.settings.credentials import get_secret

    kind = cast(ProviderKind, provider_kind(config).value)
    if kind == "cloudflare":
        url = gateway_url(config)
        aig_token, aig_source = get_secret("aig_token")
        if not url.value or not aig_token:
            raise UserError(NO_CREDENTIALS)
        # The optional API token is looked up only where the gateway token was found (env:
        # env only; file: env or file), so `cc-proxy run` on a machine without a keyring never
        # imports keyring (~100 ms) before claude starts.
        cloudflare_token, _ = get_secret(
            "cloudflare_api_token", look_in=COMPANION_SOURCES[aig_source]
        )
        headers = provider_headers(kind, aig_token=aig_token, cloudflare_token=cloudflare_token)
        return ProviderSettings(
            kind,
            _checked(url, normalize_gateway_url),
            headers,
            endpoint=cast(GatewayEndpoint, gateway_endpoint(config).value),
            gateway=gateway_options(config),
        )
    url = base_url(config)
    if not url.value:
        raise UserError(
            f"No base URL for the {kind} provider: run "
            f"`cc-proxy login --provider {kind} --base-url URL` (or set {ENV_BASE_URL})"
        )
    api_key, _ = get_secret("api_key")
    headers = provider_headers(kind, api_key=api_key)
    # The `[gateway]` settings count here too when the base URL is one of AI Gateway's
    # provider paths (ProviderSettings.is_ai_gateway).
    return ProviderSettings(
        kind, _checked(url, normalize_base_url), headers, gateway=gateway_options(config)
    )


def provider_headers(
    kind: str,
    *,
    aig_token: str | None = None,
    cloudflare_token: str | None = None,
    api_key: str | None = None,
) -> dict[str, str]:
    """Upstream auth headers: the gateway token as cf-aig-authorization plus the optional
    Workers AI token as Authorization (cloudflare); the API key as x-api-key (anthropic) or a
    Bearer token (openai)."""
    if kind == "cloudflare":
        headers = {"cf-aig-authorization": f"Bearer {aig_token}"}
        if cloudflare_token:
            headers["Authorization"] = f"Bearer {cloudflare_token}"
        return headers
    if not api_key:
        return {}
    return {"x-api-key": api_key} if kind == "anthropic" else {"Authorization": f"Bearer {api_key}"}


def _checked(url: Sourced, normalize: Any) -> str:
    """Normalize a URL, saying where the bad value came from when it is invalid."""
    assert url.value is not None
    try:
        return cast(str, normalize(url.value))
    except UserError as exc:
        where = "the environment" if url.source == "env" else "config.toml"
        raise UserError(f"{exc.message} (from {where})") from exc


def build_catalog(config: Config) -> Catalog:
    return Catalog.build(config.user_models.values())


def require_model(catalog: Catalog, name: str) -> ModelSpec:
    """An alias, a cataloged upstream id, or any raw upstream id containing '/'."""
    try:
        return catalog.resolve(name)
    except UnknownModelError as exc:
        if "/" in name:
            return ad_hoc_spec(name)
        raise UserError(
            f"unknown model {name!r}; known aliases: {', '.join(exc.known)}; "
            "add one with `cc-proxy models add`"
        ) from exc


def resolve_fallbacks(
    catalog: Catalog, configured: Mapping[str, Sequence[str]]
) -> dict[str, tuple[ModelSpec, ...]]:
    """`[models.X] fallbacks` as specs, by the alias they stand in for; a name that is not a
    model is the user's mistake, said at start-up rather than when capacity runs out."""
    resolved: dict[str, tuple[ModelSpec, ...]] = {}
    for alias, names in configured.items():
        try:
            owner = catalog.resolve(alias)
        except UnknownModelError:
            raise UserError(
                f"config.toml: models.{alias}.fallbacks: {alias!r} is not a known model"
            ) from None
        specs = []
        for name in names:
            try:
                specs.append(catalog.resolve(name))
            except UnknownModelError:
                raise UserError(
                    f"config.toml: models.{alias}.fallbacks: unknown model {name!r}; known "
                    f"aliases: {', '.join(catalog.aliases())}"
                ) from None
        resolved[owner.alias] = tuple(specs)
    return resolved


def model_choice(argument: str | None, env_name: str, config_value: str | None) -> Sourced:
    """A model name by precedence: argument, environment, config."""
    if argument:
        return Sourced(argument, "argument")
    return _pick(env_name, config_value)


def resolve_proxy_settings(
    model: str | None,
    *,
    session_token: str,
    small_model: str | None = None,
    subagent_model: str | None = None,
    config: Config | None = None,
    **overrides: Any,
) -> ProxySettings:
    """Everything one proxy needs, from arguments, environment, config and built-in defaults."""
    config = config if config is not None else load_config()
    catalog = build_catalog(config)
    # Models before credentials: a typo in the alias is the more likely mistake, and the
    # user should not be sent to `cc-proxy login` to find out about it.
    main_name = model_choice(model, ENV_MODEL, config.default_model).value or DEFAULT_MODEL_ALIAS
    main_spec = require_model(catalog, main_name)
    small_name = model_choice(small_model, ENV_SMALL_MODEL, config.small_model).value
    subagent_name = model_choice(subagent_model, ENV_SUBAGENT_MODEL, config.subagent_model).value
    small_spec = require_model(catalog, small_name) if small_name else main_spec
    subagent_spec = require_model(catalog, subagent_name) if subagent_name else None
    provider = resolve_provider(config)
    tunables = {**config.proxy, **overrides}
    allowed = {f.name for f in fields(ProxySettings)}
    unknown = set(tunables) - allowed
    if unknown:
        raise TypeError(f"not ProxySettings fields: {', '.join(sorted(unknown))}")
    tunables.setdefault("log_file", proxy_log_path())
    return ProxySettings(
        fallbacks=resolve_fallbacks(catalog, config.fallbacks),
        provider=provider,
        catalog=catalog,
        main_model=main_spec,
        small_model=small_spec,
        subagent_model=subagent_spec,
        session_token=session_token,
        **tunables,
    )
