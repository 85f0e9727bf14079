"""`cc-proxy login` and `cc-proxy logout`: store and remove the provider settings and secrets.

Secrets come from a hidden prompt or from stdin (`--…-stdin`), never from argv, where
any user on the machine could read them in the process list.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, replace
from typing import Annotated

import typer

from cc_nemo.cli.common import ask, ask_optional, note, warn
from cc_nemo.errors import UserError
from cc_nemo.settings.config import PROVIDERS, Config, load_config, save_config
from cc_nemo.settings.credentials import (
    SECRET_ENV,
    SECRET_LABELS,
    SECRET_NAMES,
    SecretName,
    delete_secret,
    keyring_backend_name,
    secrets_file_path,
    set_secret,
    stored_secret,
    validate_secret,
)

_ACCOUNT_ID = re.compile(r"^[0-9a-fA-F]{32}$")


@dataclass
class LoginInput:
    """What `login` collected: non-secret settings and the secrets to store."""

    provider: str
    url: str
    secrets: dict[SecretName, str] = field(default_factory=dict)
    # The AI Gateway path chosen (--endpoint, or the one a pasted URL ends with); None keeps
    # the configured one.
    endpoint: str | None = None


def login(
    provider: Annotated[
        str | None,
        typer.Option(
            metavar="[cloudflare|openai|anthropic]",
            help="cloudflare: AI Gateway (default); openai: any OpenAI-compatible API; "
            "anthropic: an Anthropic Messages API, passed through.",
        ),
    ] = None,
    gateway_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="AI Gateway URL: https://gateway.ai.cloudflare.com/v1/{account_id}/{gateway}.",
        ),
    ] = None,
    account_id: Annotated[
        str | None,
        typer.Option(metavar="ID", help="Cloudflare account id (with --gateway)."),
    ] = None,
    gateway: Annotated[
        str | None, typer.Option(metavar="NAME", help="AI Gateway name (with --account-id).")
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            metavar="[compat|workers-ai]",
            help="AI Gateway path: compat ({gateway}/compat/chat/completions, model ids "
            "workers-ai/@cf/…; the default) or workers-ai ({gateway}/workers-ai/v1/chat/"
            "completions, model ids @cf/…).",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Base URL for openai/anthropic, e.g. http://localhost:11434/v1 (Ollama).",
        ),
    ] = None,
    aig_token_stdin: Annotated[
        bool, typer.Option("--aig-token-stdin", help="Read the AI Gateway token from stdin.")
    ] = False,
    cloudflare_token_stdin: Annotated[
        bool,
        typer.Option(
            "--cloudflare-token-stdin",
            help="Read the Cloudflare API token (Workers AI) from stdin, after the gateway token.",
        ),
    ] = False,
    api_key_stdin: Annotated[
        bool,
        typer.Option("--api-key-stdin", help="Read the API key (openai/anthropic) from stdin."),
    ] = False,
    verify: Annotated[
        bool,
        typer.Option("--verify/--no-verify", help="Check the credentials with one cheap request."),
    ] = True,
) -> None:
    """Store the provider URL (config.toml) and tokens (OS keyring) cc-proxy uses.

    Secrets are read from hidden prompts, or from stdin with the --…-stdin flags
    (one per line, in the order the flags are listed here).

    Example: printf '%s\n' "$AIG_TOKEN" | cc-proxy login --gateway-url URL --aig-token-stdin
    """
    config = load_config()
    gateway_flags = bool(
        gateway_url
        or account_id
        or gateway
        or endpoint
        or aig_token_stdin
        or cloudflare_token_stdin
    )
    generic_flags = bool(base_url or api_key_stdin)
    if gateway_flags and generic_flags:
        raise UserError(
            "the gateway flags (--gateway-url, --account-id, --gateway, --endpoint, "
            "--aig-token-stdin, --cloudflare-token-stdin) are for the cloudflare provider; "
            "--base-url and --api-key-stdin for openai or anthropic: do not mix them"
        )
    generic_default = config.provider if config.provider in ("openai", "anthropic") else "openai"
    inferred = "cloudflare" if gateway_flags else generic_default if generic_flags else None
    chosen = (provider or inferred or config.provider or "cloudflare").strip().lower()
    if chosen not in PROVIDERS:
        raise UserError(f"--provider must be one of {', '.join(PROVIDERS)}, not {chosen!r}")
    if (chosen == "cloudflare" and generic_flags) or (chosen != "cloudflare" and gateway_flags):
        raise UserError(f"those flags do not apply to --provider {chosen}; see `cc-proxy login -h`")
    piped = _read_piped_secrets(
        {
            "aig_token": aig_token_stdin,
            "cloudflare_api_token": cloudflare_token_stdin,
            "api_key": api_key_stdin,
        }
    )
    prompting = not piped
    if chosen == "cloudflare":
        chosen_endpoint = _endpoint_option(endpoint)
        url, pasted_endpoint = _gateway_url(gateway_url, account_id, gateway, config, prompting)
        collected = LoginInput(
            chosen,
            url,
            _cloudflare_secrets(piped, prompting),
            endpoint=chosen_endpoint or pasted_endpoint,
        )
    else:
        url = _base_url(base_url, config, chosen, prompting)
        collected = LoginInput(chosen, url, _api_key(piped, prompting, chosen))
    if verify:
        _verify(collected, config)
    _save(collected, config)


def login_flow() -> None:
    """The interactive `cc-proxy login` (prompts, then one verification request), for `run` to
    offer when a first start finds no credentials."""
    login()


def _read_piped_secrets(flags: dict[SecretName, bool]) -> dict[SecretName, str]:
    """One secret per stdin line, in SECRET_NAMES order, for each flag given."""
    wanted = [name for name in SECRET_NAMES if flags[name]]
    if not wanted:
        return {}
    lines = [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
    if len(lines) < len(wanted):
        labels = ", then ".join(SECRET_LABELS[name] for name in wanted)
        raise UserError(f"expected {len(wanted)} line(s) on stdin: {labels}")
    return {
        name: validate_secret(name, value)
        for name, value in zip(wanted, lines[: len(wanted)], strict=True)
    }


def _endpoint_option(endpoint: str | None) -> str | None:
    from cc_nemo.settings.runtime import GATEWAY_ENDPOINTS

    if endpoint is None:
        return None
    chosen = endpoint.strip().lower()
    if chosen not in GATEWAY_ENDPOINTS:
        raise UserError(
            f"--endpoint must be one of {', '.join(GATEWAY_ENDPOINTS)}, not {endpoint!r}"
        )
    return chosen


def _gateway_url(
    url: str | None, account_id: str | None, gateway: str | None, config: Config, prompting: bool
) -> tuple[str, str | None]:
    """The gateway URL, and the endpoint a pasted URL named (`…/workers-ai/v1`), if any."""
    from cc_nemo.settings.resolve import (
        endpoint_in_url,
        gateway_url_from_parts,
        normalize_gateway_url,
    )

    if url and (account_id or gateway):
        raise UserError("give either --gateway-url or --account-id with --gateway, not both")
    if url:
        return normalize_gateway_url(url), endpoint_in_url(url)
    if account_id or gateway:
        if not (account_id and gateway):
            raise UserError("--account-id and --gateway go together")
        return gateway_url_from_parts(account_id, gateway), None
    if not prompting:
        if config.gateway_url:
            return normalize_gateway_url(config.gateway_url), None
        raise UserError("pass --gateway-url (or --account-id and --gateway)")
    answer = ask(
        "AI Gateway URL (https://gateway.ai.cloudflare.com/v1/{account_id}/{gateway}) or account id",
        default=config.gateway_url,
        flag="--gateway-url",
    )
    if _ACCOUNT_ID.match(answer):
        return gateway_url_from_parts(answer, ask("AI Gateway name", flag="--gateway")), None
    return normalize_gateway_url(answer), endpoint_in_url(answer)


def _cloudflare_secrets(piped: dict[SecretName, str], prompting: bool) -> dict[SecretName, str]:
    if not prompting:
        if "aig_token" not in piped:
            raise UserError("the AI Gateway token is required: add --aig-token-stdin")
        return piped
    secrets: dict[SecretName, str] = {}
    stored_aig, _ = stored_secret("aig_token")
    keep = " (Enter keeps the stored one)" if stored_aig else ""
    aig = ask_optional(f"AI Gateway token, sent as cf-aig-authorization{keep}", secret=True)
    if aig:
        secrets["aig_token"] = validate_secret("aig_token", aig)
    elif not stored_aig:
        raise UserError("the AI Gateway token is required (AI Gateway → your gateway → Settings)")
    stored_cf, _ = stored_secret("cloudflare_api_token")
    skip = "Enter keeps the stored one" if stored_cf else "optional, Enter to skip"
    cloudflare = ask_optional(f"Cloudflare API token for Workers AI ({skip})", secret=True)
    if cloudflare:
        secrets["cloudflare_api_token"] = validate_secret("cloudflare_api_token", cloudflare)
    return secrets


def _base_url(url: str | None, config: Config, provider: str, prompting: bool) -> str:
    from cc_nemo.settings.resolve import normalize_base_url

    if url:
        return normalize_base_url(url)
    if not prompting:
        if config.base_url:
            return normalize_base_url(config.base_url)
        raise UserError(f"pass --base-url for --provider {provider}")
    example = "https://openrouter.ai/api/v1" if provider == "openai" else "https://host/v1"
    return normalize_base_url(
        ask(f"Base URL (e.g. {example})", default=config.base_url, flag="--base-url")
    )


def _api_key(piped: dict[SecretName, str], prompting: bool, provider: str) -> dict[SecretName, str]:
    if not prompting:
        return piped
    stored, _ = stored_secret("api_key")
    skip = "Enter keeps the stored one" if stored else "Enter if the server needs none"
    key = ask_optional(f"API key for the {provider} provider ({skip})", secret=True)
    return {"api_key": validate_secret("api_key", key)} if key else {}


def _verify(collected: LoginInput, config: Config) -> None:
    """Check the new credentials (merged with the stored ones the user chose to keep)."""
    from cc_nemo.cloudflare.verify import verify_credentials
    from cc_nemo.settings.catalog import DEFAULT_MODEL_ALIAS
    from cc_nemo.settings.resolve import (
        ENV_MODEL,
        build_catalog,
        model_choice,
        provider_headers,
        require_model,
    )
    from cc_nemo.settings.runtime import ProviderSettings

    def secret(name: SecretName) -> str | None:
        return collected.secrets.get(name) or stored_secret(name)[0]

    headers = provider_headers(
        collected.provider,
        aig_token=secret("aig_token"),
        cloudflare_token=secret("cloudflare_api_token"),
        api_key=secret("api_key"),
    )
    provider = ProviderSettings(
        collected.provider,  # type: ignore[arg-type]
        collected.url,
        headers,
        endpoint=_saved_endpoint(collected, config),  # type: ignore[arg-type]
    )
    name = model_choice(None, ENV_MODEL, config.default_model).value or DEFAULT_MODEL_ALIAS
    model = require_model(build_catalog(config), name)
    target = provider.chat_completions_url if provider.kind == "cloudflare" else collected.url
    note(f"Checking the credentials with one request to {target} …")
    note(verify_credentials(provider, model))


def _saved_endpoint(collected: LoginInput, config: Config) -> str:
    """The AI Gateway path `run` will use after this login (the environment aside)."""
    from cc_nemo.settings.runtime import DEFAULT_GATEWAY_ENDPOINT

    if collected.endpoint is not None:
        return collected.endpoint
    configured = config.gateway.get("endpoint")
    return configured if isinstance(configured, str) else DEFAULT_GATEWAY_ENDPOINT


def _save(collected: LoginInput, config: Config) -> None:
    from cc_nemo.settings.resolve import ENV_GATEWAY_ENDPOINT
    from cc_nemo.settings.runtime import GATEWAY_ENDPOINT_PATHS

    if collected.provider == "cloudflare":
        config = replace(config, provider="cloudflare", gateway_url=collected.url)
        if collected.endpoint is not None:
            config = replace(config, gateway={**config.gateway, "endpoint": collected.endpoint})
    else:
        config = replace(config, provider=collected.provider, base_url=collected.url)
    save_config(config)
    places = {name: set_secret(name, value) for name, value in collected.secrets.items()}
    note(f"Logged in: {collected.provider} provider at {collected.url}")
    if collected.provider == "cloudflare":
        endpoint = _saved_endpoint(collected, config)
        ids = "workers-ai/@cf/…" if endpoint == "compat" else "@cf/…"
        path = GATEWAY_ENDPOINT_PATHS[endpoint]  # type: ignore[index]
        note(f"  endpoint: {endpoint} (…{path}, model ids {ids})")
        if os.environ.get(ENV_GATEWAY_ENDPOINT, "").strip():
            warn(f"{ENV_GATEWAY_ENDPOINT} is set in the environment and overrides the endpoint")
    for name, place in places.items():
        where = "the OS keyring" if place == "keyring" else str(secrets_file_path())
        note(f"  {SECRET_LABELS[name]} stored in {where}")
    if "file" in places.values():
        warn(
            f"no usable OS keyring ({keyring_backend_name()}); secrets are in "
            f"{secrets_file_path()} (mode 0600)"
        )
    for name in collected.secrets:
        if os.environ.get(SECRET_ENV[name], "").strip():
            warn(f"{SECRET_ENV[name]} is set in the environment and overrides the stored value")


def logout() -> None:
    """Remove the stored tokens (keyring and fallback file); config.toml is kept."""
    removed = []
    failures = []
    for name in SECRET_NAMES:
        _, source = stored_secret(name)
        if source == "missing":
            continue
        try:
            delete_secret(name)
        except UserError as exc:
            failures.append(exc.message)
            continue
        removed.append(f"{SECRET_LABELS[name]} (from {source})")
    if removed:
        note("Removed: " + ", ".join(removed))
    elif not failures:
        note("No stored secrets to remove.")
    for name in SECRET_NAMES:
        if os.environ.get(SECRET_ENV[name], "").strip():
            warn(f"{SECRET_ENV[name]} is still set in the environment")
    if failures:
        raise UserError("; ".join(failures))


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(logout)
